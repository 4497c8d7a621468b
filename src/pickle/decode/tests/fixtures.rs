//! Snapshots shaped like RD-Agent's, written by the project's fixture generator (scripts/fixtures,
//! contract in its usage text): decoded whole, cut at every offset, and mutated.

use std::process::Command;

use super::support::{decode_default, Rng};
use crate::pickle::{Graph, Value};

const SIGNED_MAGIC: &[u8] = b"RDAGENT_SIGNED_PICKLE_V1\n";
/// Magic line plus the 32-byte HMAC-SHA256.
const SIGNED_HEADER_LEN: usize = 25 + 32;

/// `fixtures snapshot` output, with a signed envelope removed.
pub(super) fn fixture_snapshot(protocol: u8, loops: u32, signed: bool) -> Vec<u8> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/fixtures");
    // Tests run in parallel and may ask for the same snapshot: each call writes its own file.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out_file = std::env::temp_dir().join(format!(
        "rd-chain-pickle-test-{}-{call}-p{protocol}-l{loops}-{signed}",
        std::process::id()
    ));
    let mut cmd = Command::new("python3");
    cmd.arg(script).arg("snapshot").arg(&out_file).args([
        "--protocol",
        &protocol.to_string(),
        "--loops",
        &loops.to_string(),
    ]);
    if signed {
        cmd.arg("--signed");
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 {script}: {e}"));
    assert!(
        out.status.success(),
        "{script} snapshot failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let data = std::fs::read(&out_file).expect("snapshot written");
    let _ = std::fs::remove_file(&out_file);
    if signed {
        assert!(
            data.starts_with(SIGNED_MAGIC),
            "signed snapshot without its magic line"
        );
        data[SIGNED_HEADER_LEN..].to_vec()
    } else {
        data
    }
}

fn assert_factor_loop(g: &Graph, loops: usize) {
    assert_eq!(
        g.class_of(&g.root),
        Some(("rdagent.app.qlib_rd_loop.factor", "FactorRDLoop"))
    );
    let trace = g.attr(&g.root, "trace").expect("loop.trace");
    let hist = g
        .items(g.attr(trace, "hist").expect("trace.hist"))
        .expect("hist list");
    assert!(
        !hist.is_empty() && hist.len() <= loops,
        "hist has {} entries",
        hist.len()
    );
    for entry in hist {
        let pair = g.items(entry).expect("hist entry is a tuple");
        assert_eq!(pair.len(), 2);
        let (_, class) = g.class_of(&pair[0]).expect("experiment object");
        assert_eq!(class, "QlibFactorExperiment");
        assert!(g
            .attr(&pair[1], "decision")
            .is_some_and(|d| matches!(d, Value::Bool(_))));
    }
}

#[test]
fn generator_snapshots_decode_for_every_protocol() {
    for protocol in 2..=5 {
        let data = fixture_snapshot(protocol, 3, false);
        let g = decode_default(&data).unwrap_or_else(|e| panic!("p{protocol}: {e}"));
        assert_eq!(g.protocol, protocol);
        assert_factor_loop(&g, 3);
    }
    let payload = fixture_snapshot(5, 3, true);
    let g = decode_default(&payload).unwrap_or_else(|e| panic!("signed payload: {e}"));
    assert_eq!(g.protocol, 5);
    assert_factor_loop(&g, 3);
}

#[test]
fn generator_snapshot_cut_at_every_offset_is_an_error() {
    let data = fixture_snapshot(5, 2, true);
    for len in 0..data.len() {
        match decode_default(&data[..len]) {
            Ok(g) => panic!("cut at {len} of {} decoded to {:?}", data.len(), g.root),
            Err(e) => assert!(e.offset <= len, "cut at {len}: {e}"),
        }
    }
    assert_factor_loop(&decode_default(&data).unwrap(), 2);
}

#[test]
fn generator_snapshot_mutations_never_panic() {
    let sources = [fixture_snapshot(4, 2, false), fixture_snapshot(2, 2, false)];
    let mut rng = Rng::new(0xf1_7e5);
    let (mut decoded, mut rejected) = (0, 0);
    for round in 0..2000 {
        let mut data = sources[round % sources.len()].clone();
        for _ in 0..1 + rng.below(2) {
            let at = rng.below(data.len());
            if rng.below(2) == 0 {
                data[at] ^= 1 << rng.below(8);
            } else {
                data[at] = rng.next_u64() as u8;
            }
        }
        match decode_default(&data) {
            Ok(_) => decoded += 1,
            Err(e) => {
                assert!(e.offset <= data.len(), "{e}");
                rejected += 1;
            }
        }
    }
    assert!(
        decoded > 50 && rejected > 50,
        "decoded {decoded}, rejected {rejected}"
    );
}
