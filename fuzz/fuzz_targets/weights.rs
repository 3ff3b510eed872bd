//! Fuzzes model-weight loading (`safetensors_io::from_bytes`, what `mnist eval` and
//! `mnist grad --weights` use; it runs the checksum check of `safetensors_io::verify` first):
//! never a panic; every error one line and naming the input; a model that loads passed its
//! checksums (or had none), and writes and reloads to equal bytes.
#![no_main]
use gradspec::cnn::safetensors_io::{Checksums, from_bytes, to_bytes, verify};
use libfuzzer_sys::fuzz_target;

fn check_error(e: &anyhow::Error) {
    let msg = format!("{e:#}");
    assert!(msg.starts_with("'fuzz.safetensors'"), "{msg}");
    assert!(!msg.contains('\n') && !msg.contains('\r'), "{msg}");
}

fuzz_target!(|data: &[u8]| {
    match from_bytes(data, "fuzz.safetensors") {
        Ok(net) => {
            let checked = verify(data, "fuzz.safetensors");
            assert!(matches!(
                checked,
                Ok(Checksums::Verified | Checksums::Absent)
            ));
            let bytes = to_bytes(&net).expect("a loaded model serialises");
            assert_eq!(verify(&bytes, "again").ok(), Some(Checksums::Verified));
            let again = from_bytes(&bytes, "again").expect("a written model loads");
            assert_eq!(
                to_bytes(&again).unwrap(),
                bytes,
                "write → load → write is stable"
            );
        }
        Err(e) => check_error(&e),
    }
});
