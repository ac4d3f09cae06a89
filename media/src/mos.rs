//! Listening/conversational quality estimate per leg: a simplified ITU-T G.107 E-model, the
//! form commonly used for VoIP monitoring (e.g. Cole & Rosenbluth, "Voice over IP
//! performance monitoring", ACM SIGCOMM CCR 31(2), 2001), turning codec, packet loss and
//! one-way delay into an R-factor and an estimated MOS.
//!
//! What is left out, on purpose: echo, room noise, sidetone and loudness terms are held at
//! G.107's default values (they are properties of the phones, which we do not see), and loss
//! is treated as random (BurstR = 1) because we do not measure burstiness yet.

use serde::Serialize;

/// R with every G.107 parameter at its default value ("R = 93.2" for the default parameter
/// set, stated with the default-values table of ITU-T G.107). Equals Ro − Is with no delay
/// or codec impairment.
pub const R_DEFAULT: f64 = 93.2;

/// Simplified delay impairment Id (Cole & Rosenbluth 2001, fit to G.107's Id curve for the
/// default echo settings): Id = 0.024·d + 0.11·(d − 177.3)·H(d − 177.3), d in ms one-way.
const ID_SLOPE: f64 = 0.024;
const ID_KNEE_MS: f64 = 177.3;
const ID_KNEE_SLOPE: f64 = 0.11;

/// Codec figures for the E-model: equipment impairment Ie and packet-loss robustness Bpl.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CodecImpairment {
    pub ie: f64,
    pub bpl: f64,
}

impl CodecImpairment {
    /// G.711 with packet loss concealment: Ie = 0, Bpl = 25.1 (ITU-T G.113 Appendix I,
    /// provisional planning values for Ie and Bpl: G.711 with the G.711 Appendix I PLC,
    /// random loss).
    pub const G711_PLC: Self = Self { ie: 0.0, bpl: 25.1 };
    /// G.711 without concealment: Ie = 0, Bpl = 4.3 (ITU-T G.113 Appendix I, same table).
    pub const G711_NO_PLC: Self = Self { ie: 0.0, bpl: 4.3 };
    /// Opus: ITU-T publishes no narrowband Ie/Bpl for Opus (G.113 predates it), so these are
    /// OUR PROVISIONAL ASSUMPTIONS, not a standard's figures: Ie = 0 because Opus at VoIP
    /// bitrates is rated at least as good as G.711 in listening tests, and Bpl = 25.1, the
    /// G.711+PLC figure, because Opus always conceals loss with its own PLC (and FEC when
    /// negotiated). Replace them once measured (e.g. with P.863 on our own recordings).
    pub const OPUS_PROVISIONAL: Self = Self { ie: 0.0, bpl: 25.1 };
}

/// What the E-model needs from one leg.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QualityInput {
    pub codec: CodecImpairment,
    /// Packet loss as seen by the listener, in percent (network loss plus late discards).
    pub loss_percent: f64,
    /// One-way mouth-to-ear delay in ms: network delay (e.g. RTT/2 from RTCP) plus
    /// packetisation and jitter buffer delay.
    pub one_way_delay_ms: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct QualityEstimate {
    pub r_factor: f64,
    pub mos: f64,
}

/// Delay impairment Id for a one-way delay in ms (negative or NaN delays count as 0).
pub fn delay_impairment(one_way_delay_ms: f64) -> f64 {
    let d = sanitize(one_way_delay_ms);
    let knee = if d > ID_KNEE_MS {
        ID_KNEE_SLOPE * (d - ID_KNEE_MS)
    } else {
        0.0
    };
    ID_SLOPE * d + knee
}

/// Effective equipment impairment, ITU-T G.107 §7 (Ie,eff) with BurstR = 1 (random loss):
/// Ie,eff = Ie + (95 − Ie) · Ppl / (Ppl + Bpl).
pub fn effective_equipment_impairment(codec: CodecImpairment, loss_percent: f64) -> f64 {
    let ppl = sanitize(loss_percent).min(100.0);
    let denominator = ppl + codec.bpl;
    if denominator <= 0.0 {
        return codec.ie;
    }
    codec.ie + (95.0 - codec.ie) * ppl / denominator
}

/// R → MOS (ITU-T G.107 Annex B): MOS = 1 + 0.035R + R(R − 60)(100 − R)·7·10⁻⁶ for
/// 0 < R < 100. The cubic dips slightly below 1 for R under about 6.5; clamping to [1, 4.5]
/// keeps the mapping monotonic.
pub fn mos_from_r(r: f64) -> f64 {
    if r.is_nan() || r <= 0.0 {
        return 1.0;
    }
    if r >= 100.0 {
        return 4.5;
    }
    let mos = 1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7.0e-6;
    mos.clamp(1.0, 4.5)
}

/// R-factor and MOS for one leg. The advantage factor A is 0 (wired/enterprise telephony).
pub fn estimate(input: QualityInput) -> QualityEstimate {
    let r = R_DEFAULT
        - delay_impairment(input.one_way_delay_ms)
        - effective_equipment_impairment(input.codec, input.loss_percent);
    let r_factor = r.clamp(0.0, 100.0);
    QualityEstimate {
        r_factor,
        mos: mos_from_r(r_factor),
    }
}

/// Negative, NaN or infinite measurements must not produce a better-than-perfect score.
fn sanitize(v: f64) -> f64 {
    if v.is_finite() {
        v.max(0.0)
    } else if v == f64::INFINITY {
        f64::MAX
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g711(loss: f64, delay: f64) -> QualityEstimate {
        estimate(QualityInput {
            codec: CodecImpairment::G711_PLC,
            loss_percent: loss,
            one_way_delay_ms: delay,
        })
    }

    #[test]
    fn g711_clean_short_delay_is_about_4_4() {
        let q = g711(0.0, 20.0);
        // R = 93.2 − 0.024·20 = 92.72.
        assert!((q.r_factor - 92.72).abs() < 1e-9, "{q:?}");
        assert!((q.mos - 4.4).abs() < 0.02, "{q:?}");
    }

    #[test]
    fn known_points() {
        // R = 93.2 → 1 + 3.262 + 93.2·33.2·6.8·7e-6 = 4.40929...
        assert!((mos_from_r(93.2) - 4.409_29).abs() < 1e-4);
        assert_eq!(mos_from_r(0.0), 1.0);
        assert_eq!(mos_from_r(100.0), 4.5);
        // R = 50 → 1 + 1.75 + 50·(−10)·50·7e-6 = 2.575.
        assert!((mos_from_r(50.0) - 2.575).abs() < 1e-12);
        // Ie,eff at 5 % loss with Bpl 25.1: 95·5/30.1.
        let ie = effective_equipment_impairment(CodecImpairment::G711_PLC, 5.0);
        assert!((ie - 95.0 * 5.0 / 30.1).abs() < 1e-12);
        // Beyond the knee: Id(277.3) = 0.024·277.3 + 0.11·100.
        assert!((delay_impairment(277.3) - (6.6552 + 11.0)).abs() < 1e-9);
        // Without PLC the same loss hurts much more.
        let no_plc = estimate(QualityInput {
            codec: CodecImpairment::G711_NO_PLC,
            loss_percent: 2.0,
            one_way_delay_ms: 20.0,
        });
        assert!(no_plc.mos < g711(2.0, 20.0).mos - 0.5);
    }

    #[test]
    fn decreases_monotonically_with_loss_and_delay() {
        let mut last = f64::INFINITY;
        for step in 0..=200 {
            let q = g711(f64::from(step) * 0.5, 20.0);
            assert!(
                q.mos <= last,
                "loss {}: {q:?} > {last}",
                f64::from(step) * 0.5
            );
            last = q.mos;
        }
        let mut last = f64::INFINITY;
        for delay in (0..=1000).step_by(5) {
            let q = g711(1.0, f64::from(delay));
            assert!(q.mos <= last, "delay {delay}: {q:?}");
            last = q.mos;
        }
        // Strictly lower at meaningful points.
        assert!(g711(1.0, 20.0).mos < g711(0.0, 20.0).mos);
        assert!(g711(0.0, 300.0).mos < g711(0.0, 150.0).mos);
        let mut last = f64::INFINITY;
        for tenth in 0..=1000 {
            let m = mos_from_r(100.0 - f64::from(tenth) * 0.1);
            assert!(m <= last);
            last = m;
        }
    }

    #[test]
    fn hostile_inputs_stay_in_range() {
        for (loss, delay) in [
            (f64::NAN, f64::NAN),
            (-5.0, -100.0),
            (f64::INFINITY, f64::INFINITY),
            (500.0, 1e12),
        ] {
            let q = g711(loss, delay);
            assert!((1.0..=4.5).contains(&q.mos), "{q:?}");
            assert!((0.0..=100.0).contains(&q.r_factor), "{q:?}");
        }
        assert_eq!(g711(-5.0, -100.0), g711(0.0, 0.0));
    }
}
