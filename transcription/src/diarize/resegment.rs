//! Re-segmentation: one small diagonal GMM per speaker, trained on the frames currently given
//! to that speaker, then a Viterbi pass over all speech frames with a cost for switching
//! speaker. It moves boundaries to where the voices actually change and absorbs clusters
//! that hold no real speaker (they lose their frames and vanish).

use super::features::DIMS;

const COMPONENTS: usize = 8;
const EM_ITERATIONS: usize = 5;
/// Frames used to train one speaker's model (evenly spread over its frames): bounds the cost
/// on long calls without changing the model much.
const MAX_TRAIN_FRAMES: usize = 4_000;
/// A speaker needs this many frames (≈ 0.5 s) to keep a model.
const MIN_FRAMES: usize = 30;
const VAR_FLOOR: f32 = 0.01;

struct Gmm {
    log_weights: Vec<f32>,
    means: Vec<[f32; DIMS]>,
    inv_vars: Vec<[f32; DIMS]>,
    /// log weight − ½ Σ log(2π var) per component.
    consts: Vec<f32>,
}

impl Gmm {
    fn train(x: &[f32], frames: &[usize]) -> Option<Gmm> {
        if frames.len() < MIN_FRAMES {
            return None;
        }
        let step = frames.len().div_ceil(MAX_TRAIN_FRAMES).max(1);
        let data: Vec<&[f32]> = frames.iter().step_by(step).map(|&t| row(x, t)).collect();
        let m = COMPONENTS.min(data.len() / 10).max(1);
        // Initial means: frames spread evenly through the speaker's speech.
        let mut means: Vec<[f32; DIMS]> = (0..m)
            .map(|c| {
                to_array(
                    data.get(c * data.len() / m + data.len() / (2 * m))
                        .copied()
                        .unwrap_or(&[]),
                )
            })
            .collect();
        let mut vars = vec![[1.0f32; DIMS]; m];
        let mut weights = vec![1.0 / m as f32; m];
        let mut post = vec![0f32; m];
        for _ in 0..EM_ITERATIONS {
            let gmm = Gmm::from_parts(&weights, &means, &vars);
            let mut n_k = vec![0f32; m];
            let mut s1 = vec![[0f32; DIMS]; m];
            let mut s2 = vec![[0f32; DIMS]; m];
            for v in &data {
                gmm.posteriors(v, &mut post);
                for c in 0..m {
                    let p = post[c];
                    n_k[c] += p;
                    for d in 0..DIMS {
                        let xv = v.get(d).copied().unwrap_or(0.0);
                        s1[c][d] += p * xv;
                        s2[c][d] += p * xv * xv;
                    }
                }
            }
            let total: f32 = n_k.iter().sum::<f32>().max(1e-6);
            for c in 0..m {
                if n_k[c] < 1e-3 {
                    continue; // keep the old parameters of an empty component
                }
                weights[c] = n_k[c] / total;
                for d in 0..DIMS {
                    let mu = s1[c][d] / n_k[c];
                    means[c][d] = mu;
                    vars[c][d] = (s2[c][d] / n_k[c] - mu * mu).max(VAR_FLOOR);
                }
            }
        }
        Some(Gmm::from_parts(&weights, &means, &vars))
    }

    fn from_parts(weights: &[f32], means: &[[f32; DIMS]], vars: &[[f32; DIMS]]) -> Gmm {
        let ln_2pi = (2.0 * std::f32::consts::PI).ln();
        let inv_vars: Vec<[f32; DIMS]> = vars.iter().map(|v| v.map(|x| 1.0 / x)).collect();
        let consts = weights
            .iter()
            .zip(vars)
            .map(|(w, v)| w.max(1e-6).ln() - 0.5 * v.iter().map(|x| x.ln() + ln_2pi).sum::<f32>())
            .collect();
        Gmm {
            log_weights: weights.iter().map(|w| w.max(1e-6).ln()).collect(),
            means: means.to_vec(),
            inv_vars,
            consts,
        }
    }

    /// Per-component log(weight · density) into `out`; returns their log-sum-exp.
    fn component_logs(&self, v: &[f32], out: &mut [f32]) -> f32 {
        let mut max = f32::NEG_INFINITY;
        for (c, o) in out.iter_mut().enumerate().take(self.log_weights.len()) {
            let mut q = 0f32;
            for ((x, mu), iv) in v.iter().zip(&self.means[c]).zip(&self.inv_vars[c]) {
                let diff = x - mu;
                q += diff * diff * iv;
            }
            *o = self.consts[c] - 0.5 * q;
            max = max.max(*o);
        }
        let sum: f32 = out
            .iter()
            .take(self.log_weights.len())
            .map(|l| (l - max).exp())
            .sum();
        max + sum.ln()
    }

    fn log_likelihood(&self, v: &[f32], scratch: &mut [f32]) -> f32 {
        self.component_logs(v, scratch)
    }

    fn posteriors(&self, v: &[f32], out: &mut [f32]) {
        let total = self.component_logs(v, out);
        for o in out.iter_mut() {
            *o = (*o - total).exp();
        }
    }
}

fn row(x: &[f32], t: usize) -> &[f32] {
    x.get(t * DIMS..(t + 1) * DIMS).unwrap_or(&[])
}

fn to_array(v: &[f32]) -> [f32; DIMS] {
    let mut a = [0f32; DIMS];
    for (d, s) in a.iter_mut().zip(v) {
        *d = *s;
    }
    a
}

/// One pass: train a GMM per current label, Viterbi-decode every frame. Labels that keep no
/// model (too few frames) disappear.
pub fn viterbi_relabel(x: &[f32], labels: &[usize], switch_penalty: f32) -> Vec<usize> {
    let n = labels.len();
    let k_max = labels.iter().copied().max().map_or(0, |m| m + 1);
    let mut frames_of: Vec<Vec<usize>> = vec![Vec::new(); k_max];
    for (t, &k) in labels.iter().enumerate() {
        if let Some(f) = frames_of.get_mut(k) {
            f.push(t);
        }
    }
    let models: Vec<(usize, Gmm)> = frames_of
        .iter()
        .enumerate()
        .filter_map(|(k, f)| Gmm::train(x, f).map(|g| (k, g)))
        .collect();
    if models.len() < 2 {
        // One speaker (or none with a model): nothing to decide.
        let only = models.first().map_or(0, |m| m.0);
        return vec![only; n];
    }
    let s = models.len();
    let mut scratch = vec![0f32; COMPONENTS];
    let mut score = vec![0f32; s];
    let mut next = vec![0f32; s];
    // back[t * s + j] = state at t-1 on the best path into state j at t.
    let mut back = vec![0u8; n * s];
    for t in 0..n {
        let v = row(x, t);
        if t == 0 {
            for (j, (_, g)) in models.iter().enumerate() {
                score[j] = g.log_likelihood(v, &mut scratch);
            }
            continue;
        }
        let (best_prev, best_score) =
            score
                .iter()
                .enumerate()
                .fold((0usize, f32::NEG_INFINITY), |b, (j, &sc)| {
                    if sc > b.1 { (j, sc) } else { b }
                });
        for (j, (_, g)) in models.iter().enumerate() {
            let stay = score[j];
            let switch = best_score - switch_penalty;
            let (from, base) = if stay >= switch {
                (j, stay)
            } else {
                (best_prev, switch)
            };
            next[j] = base + g.log_likelihood(v, &mut scratch);
            back[t * s + j] = from as u8;
        }
        // Keep numbers small: only differences matter.
        let top = next.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        for (sc, nx) in score.iter_mut().zip(&next) {
            *sc = nx - top;
        }
    }
    let mut state = score
        .iter()
        .enumerate()
        .fold((0usize, f32::NEG_INFINITY), |b, (j, &sc)| {
            if sc > b.1 { (j, sc) } else { b }
        })
        .0;
    let mut out = vec![0usize; n];
    for t in (0..n).rev() {
        out[t] = models[state].0;
        if t > 0 {
            state = usize::from(back[t * s + state]);
        }
    }
    out
}
