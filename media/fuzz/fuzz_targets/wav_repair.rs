//! Start-up repair of a cut-off WAV recording (`<call>.wav.part`): whatever the bytes, repair
//! must keep whole frames or refuse, never panic. Half the inputs get the recorder's RIFF,
//! fmt and data tags at their places, so that the header's fields (channels, rate, block
//! alignment, sizes) are what the fuzzer varies rather than the magic words.
#![no_main]

use callscope_media::recorder::repair;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut file = data.to_vec();
    if file.first().is_some_and(|b| b & 1 == 1) && file.len() >= 44 {
        file[..4].copy_from_slice(b"RIFF");
        file[8..16].copy_from_slice(b"WAVEfmt ");
        file[36..40].copy_from_slice(b"data");
    }
    let Ok(dir) = tempfile::tempdir() else { return };
    let part = dir.path().join("call.wav.part");
    if std::fs::write(&part, &file).is_err() {
        return;
    }
    if let Ok(report) = repair(&part) {
        let kept = std::fs::metadata(&report.path).map_or(0, |m| m.len());
        assert!(kept <= file.len() as u64, "repair only cuts");
        assert!(report.channels > 0 && report.sample_rate > 0, "{report:?}");
    }
});
