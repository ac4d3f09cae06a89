//! The process's ONNX Runtime: the shared library loaded at run time (ort's `load-dynamic`),
//! by default the one in PyPI's `onnxruntime` wheel that `scripts/setup` installs, and the
//! sessions the model-backed analysers open on it.

use std::path::Path;
use std::sync::OnceLock;

use ort::session::Session;

use crate::InferenceError;
use crate::discovery::locate_onnxruntime;

/// The process's ONNX Runtime environment. The library can be loaded only once per
/// process, so the first successful load decides which one is used.
fn environment(runtime: Option<&Path>) -> Result<ort::environment::Environment, InferenceError> {
    static ENVIRONMENT: OnceLock<ort::environment::Environment> = OnceLock::new();
    if let Some(env) = ENVIRONMENT.get() {
        return Ok(env.clone());
    }
    let library = locate_onnxruntime(runtime).ok_or_else(|| {
        InferenceError::NotFound(
            "the ONNX Runtime library (install the PyPI package onnxruntime with scripts/setup, or set ORT_DYLIB_PATH)"
                .into(),
        )
    })?;
    if !library.is_file() {
        return Err(InferenceError::NotFound(format!(
            "ONNX Runtime library {}",
            library.display()
        )));
    }
    let env = ort::init_from(&library)
        .map_err(|e| InferenceError::Onnx(format!("{}: {e}", library.display())))?
        .with_name("callscope")
        .build()
        .map_err(|e| InferenceError::Onnx(e.to_string()))?;
    Ok(ENVIRONMENT.get_or_init(|| env).clone())
}

/// A single-threaded session on `model_path` (one run at a time is what callers do; the
/// worker pool provides the parallelism).
pub(crate) fn open_session(
    model_path: &Path,
    runtime: Option<&Path>,
) -> Result<Session, InferenceError> {
    if !model_path.is_file() {
        return Err(InferenceError::NotFound(model_path.display().to_string()));
    }
    let env = environment(runtime)?;
    let onnx_error = |e: ort::Error| InferenceError::Onnx(format!("{}: {e}", model_path.display()));
    Session::builder(&env)
        .map_err(onnx_error)?
        .with_intra_threads(1)
        .map_err(|e| onnx_error(e.into()))?
        .commit_from_file(model_path)
        .map_err(onnx_error)
}
