//! Fuzzes the IDX parser (raw and gzip) for both file kinds: it must never panic, never
//! allocate from an unchecked header, and return a body consistent with its header.
#![no_main]
use gradspec::data::idx::{IdxKind, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for kind in [IdxKind::Images, IdxKind::Labels] {
        if let Ok(body) = parse(data, kind) {
            match kind {
                IdxKind::Images => assert_eq!(body.len() % 784, 0),
                IdxKind::Labels => assert!(body.iter().all(|&l| l <= 9)),
            }
        }
    }
});
