//! Runtime choice of wider SIMD for the FIR kernels (`upsample2x`, `downsample32`).
//!
//! Why at run time: the release binary targets baseline x86-64 (SSE2), so the compiler only
//! uses 128-bit vectors. Most servers have AVX2, on which the same kernels, compiled a second
//! time with it enabled, do each multiply-add on 8 lanes instead of 4. The kernels are written
//! once as `#[inline(always)]` generic code; each module adds a small `#[target_feature]` copy
//! and picks it only when the CPU reports the feature. The arithmetic, and so the output, is
//! the same either way: no fused multiply-add is enabled, and the summation order per output
//! is fixed by the code, not by the vector width.

/// Whether this CPU runs AVX2 code (the check is cached by the standard library).
#[cfg(target_arch = "x86_64")]
#[inline]
pub(crate) fn has_avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
}
