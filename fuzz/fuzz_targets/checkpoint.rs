//! Fuzzes training-checkpoint loading (`train::checkpoint::from_bytes`, what `--resume` uses):
//! never a panic; every error one line and naming the input; a checkpoint that loads passed
//! its checksums (or had none), and saves and reloads to equal bytes.
#![no_main]
use gradspec::cnn::safetensors_io::{Checksums, to_bytes_with, verify};
use gradspec::cnn::{Net, Params};
use gradspec::train::checkpoint::{self, RunState};
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;

fn check_error(e: &anyhow::Error) {
    let msg = format!("{e:#}");
    assert!(msg.starts_with("'fuzz.safetensors'"), "{msg}");
    assert!(!msg.contains('\n') && !msg.contains('\r'), "{msg}");
}

fuzz_target!(|data: &[u8]| {
    match checkpoint::from_bytes(data, "fuzz.safetensors") {
        Ok((net, velocity, state)) => {
            assert!(matches!(
                verify(data, "fuzz.safetensors"),
                Ok(Checksums::Verified | Checksums::Absent)
            ));
            // The bytes `checkpoint::save` writes (without its atomic file write).
            let save = |net: &Net<f32>, velocity: &Params<f32>, state: &RunState| {
                let meta = HashMap::from([(
                    "gradspec.run_state".to_string(),
                    serde_json::to_string(state).unwrap(),
                )]);
                to_bytes_with(net, &[("momentum.", velocity)], meta).expect("a checkpoint saves")
            };
            let bytes = save(&net, &velocity, &state);
            assert_eq!(verify(&bytes, "again").ok(), Some(Checksums::Verified));
            let (n, v, s) = checkpoint::from_bytes(&bytes, "again").expect("a saved one loads");
            assert_eq!(save(&n, &v, &s), bytes, "save → load → save is stable");
        }
        Err(e) => check_error(&e),
    }
});
