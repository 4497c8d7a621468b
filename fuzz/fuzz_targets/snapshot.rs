//! The whole snapshot path on arbitrary file contents: the signed envelope, the decoder, the history
//! (classes, decisions, loop ids), metrics, recorded paths and the HMAC check, then what the reports ask of
//! each entry. Must never panic, and must stay within the reader's complexity rules.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use rd_chain::session::snapshot::snapshot_from_bytes;
use rd_chain::session::SigningKey;

fuzz_target!(|data: &[u8]| {
    let key = SigningKey::new(b"fuzz key".to_vec(), "fuzz");
    // With the key and without: both verdicts of the signature check are exercised.
    let with_key = data.first().is_some_and(|b| b & 1 == 1);
    let Ok(read) = snapshot_from_bytes(data, with_key.then_some(&key), Path::new("fuzz-input"))
    else {
        return;
    };
    assert!(read.bytes as usize == data.len());
    let _ = (
        read.signature.as_str(),
        read.signature.describe(),
        &read.loop_class,
    );
    for (i, entry) in read.history.iter().enumerate() {
        assert_eq!(entry.index, i);
        let _ = (
            entry.kind.as_str(),
            entry.is_accepted_factor(),
            entry.loop_id,
        );
        if let Some(path) = &entry.workspace {
            let _ = (
                path.is_absolute(),
                path.is_relative(),
                path.last_segment(),
                path.split(),
            );
        }
        for (label, value) in entry.metrics.iter().flatten() {
            let _ = (label.len(), value.is_nan());
        }
    }
});
