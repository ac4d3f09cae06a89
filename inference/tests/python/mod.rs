//! Reference implementations in the project venv's Python (onnxruntime, tokenizers,
//! kaldi-native-fbank…), which the tests compare our Rust against.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::process::Command;

use callscope_inference::venv_python;

/// Runs a Python snippet offline with `args` as `sys.argv[1:]` and parses what it prints as
/// JSON; `None` (with the reason printed) when the venv lacks what the snippet imports. Any
/// other failure of the snippet fails the test.
pub fn python_json<A: AsRef<OsStr>>(script: &str, args: &[A]) -> Option<serde_json::Value> {
    let output = Command::new(venv_python())
        .arg("-c")
        .arg(script)
        .args(args)
        .env("HF_HUB_OFFLINE", "1")
        .env("TRANSFORMERS_OFFLINE", "1")
        .output();
    match output {
        Ok(o) if o.status.success() => Some(serde_json::from_slice(&o.stdout).unwrap()),
        Ok(o) => {
            let stderr = String::from_utf8_lossy(&o.stderr);
            assert!(
                stderr.contains("ModuleNotFoundError"),
                "python reference failed: {stderr}"
            );
            eprintln!(
                "SKIPPED python comparison: {}",
                stderr.lines().last().unwrap_or("")
            );
            None
        }
        Err(e) => {
            eprintln!(
                "SKIPPED python comparison: cannot run {:?}: {e}",
                venv_python()
            );
            None
        }
    }
}
