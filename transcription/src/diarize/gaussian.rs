//! Full-covariance Gaussian sufficient statistics and the BIC merge criterion used by both
//! the linear (adjacent) and the agglomerative clustering.

use super::features::DIMS;

/// Count, sum and sum of outer products of feature vectors: merging two is adding them.
#[derive(Debug, Clone)]
pub struct GaussStats {
    pub n: f64,
    sum: [f64; DIMS],
    outer: [f64; DIMS * DIMS],
}

impl Default for GaussStats {
    fn default() -> Self {
        Self {
            n: 0.0,
            sum: [0.0; DIMS],
            outer: [0.0; DIMS * DIMS],
        }
    }
}

/// Added to the covariance diagonal (features are variance-normalised, so this is 1 % of a
/// typical variance): keeps short segments' covariances invertible.
const RIDGE: f64 = 0.01;

impl GaussStats {
    pub fn add(&mut self, x: &[f32]) {
        self.n += 1.0;
        for (i, &a) in x.iter().enumerate().take(DIMS) {
            let a = f64::from(a);
            self.sum[i] += a;
            // Upper triangle only; `log_det` mirrors it.
            for (j, &b) in x.iter().enumerate().take(DIMS).skip(i) {
                self.outer[i * DIMS + j] += a * f64::from(b);
            }
        }
    }

    pub fn merged(&self, other: &GaussStats) -> GaussStats {
        let mut out = self.clone();
        out.absorb(other);
        out
    }

    pub fn absorb(&mut self, other: &GaussStats) {
        self.n += other.n;
        for (a, b) in self.sum.iter_mut().zip(&other.sum) {
            *a += b;
        }
        for (a, b) in self.outer.iter_mut().zip(&other.outer) {
            *a += b;
        }
    }

    pub fn mean(&self) -> [f64; DIMS] {
        let mut m = [0.0; DIMS];
        if self.n > 0.0 {
            for (d, s) in m.iter_mut().zip(&self.sum) {
                *d = s / self.n;
            }
        }
        m
    }

    /// log-determinant of the (ridged) maximum-likelihood covariance, by Cholesky.
    pub fn log_det(&self) -> f64 {
        if self.n <= 0.0 {
            return 0.0;
        }
        let mean = self.mean();
        let mut c = [0.0f64; DIMS * DIMS];
        for i in 0..DIMS {
            for j in i..DIMS {
                let v = self.outer[i * DIMS + j] / self.n - mean[i] * mean[j];
                c[i * DIMS + j] = v;
                c[j * DIMS + i] = v;
            }
            c[i * DIMS + i] += RIDGE;
        }
        let mut log_det = 0.0;
        // In-place Cholesky (lower triangle).
        for j in 0..DIMS {
            let mut d = c[j * DIMS + j];
            for k in 0..j {
                d -= c[j * DIMS + k] * c[j * DIMS + k];
            }
            let d = d.max(1e-12);
            let l = d.sqrt();
            c[j * DIMS + j] = l;
            log_det += 2.0 * l.ln();
            for i in j + 1..DIMS {
                let mut s = c[i * DIMS + j];
                for k in 0..j {
                    s -= c[i * DIMS + k] * c[j * DIMS + k];
                }
                c[i * DIMS + j] = s / l;
            }
        }
        log_det
    }
}

/// Parameters of a full-covariance Gaussian (mean + covariance).
const PARAMS: f64 = (DIMS + DIMS * (DIMS + 1) / 2) as f64;

/// ΔBIC of modelling two segments with one Gaussian instead of two. Negative: one model is
/// better (same speaker). `lambda` weights the model-size penalty (larger merges more).
/// `log_det_a`/`log_det_b` are cached by callers since each segment is compared many times.
pub fn delta_bic(
    a: &GaussStats,
    log_det_a: f64,
    b: &GaussStats,
    log_det_b: f64,
    lambda: f64,
) -> f64 {
    let m = a.merged(b);
    let n = m.n;
    0.5 * (n * m.log_det() - a.n * log_det_a - b.n * log_det_b) - lambda * 0.5 * PARAMS * n.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(seed: u32, offset: f32, n: usize) -> GaussStats {
        let mut s = GaussStats::default();
        let mut state = seed.max(1);
        for _ in 0..n {
            let mut x = [0f32; DIMS];
            for v in x.iter_mut() {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                *v = (state as f32 / u32::MAX as f32 - 0.5) * 2.0 + offset;
            }
            s.add(&x);
        }
        s
    }

    #[test]
    fn bic_merges_alike_and_keeps_apart_unlike() {
        let a = stats(1, 0.0, 300);
        let b = stats(2, 0.0, 300);
        let c = stats(3, 2.0, 300);
        let (la, lb, lc) = (a.log_det(), b.log_det(), c.log_det());
        assert!(delta_bic(&a, la, &b, lb, 1.0) < 0.0);
        assert!(delta_bic(&a, la, &c, lc, 1.0) > 0.0);
    }
}
