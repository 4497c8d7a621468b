//! RD-Agent 1.0's snapshot signature: HMAC-SHA256 of the pickle payload, keyed with sha256 of
//! `ARTIFACT_SIGNING_KEY` or the bytes of `~/.rdagent/artifact_signing.key`.
//!
//! rd-chain never executes a snapshot, so the signature guards nothing here; checking it tells the user whether
//! the file is the one RD-Agent wrote (a mismatch is a warning, never a reason to stop). SHA-256 is FIPS 180-4,
//! HMAC is RFC 2104; both are small enough to own rather than add a crate. Never logs or prints the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The key RD-Agent signs with, and where it came from (for messages; never the key itself).
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    bytes: Vec<u8>,
    pub source: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    pub fn new(bytes: Vec<u8>, source: impl Into<String>) -> SigningKey {
        SigningKey {
            bytes,
            source: source.into(),
        }
    }

    /// The key RD-Agent would use in this environment: sha256 of `ARTIFACT_SIGNING_KEY` if set, else the
    /// bytes of its key file (`ARTIFACT_SIGNING_KEY_PATH`, default `~/.rdagent/artifact_signing.key`) if it can
    /// be read, else none. Never creates the file (RD-Agent does, on its first signed write).
    pub fn from_env(env: &BTreeMap<String, String>) -> Option<SigningKey> {
        if let Some(material) = env.get("ARTIFACT_SIGNING_KEY").filter(|v| !v.is_empty()) {
            return Some(SigningKey::new(
                sha256(material.as_bytes()).to_vec(),
                "ARTIFACT_SIGNING_KEY",
            ));
        }
        let home = || env.get("HOME").filter(|v| !v.is_empty()).map(PathBuf::from);
        let file = match env
            .get("ARTIFACT_SIGNING_KEY_PATH")
            .filter(|v| !v.is_empty())
        {
            Some(p) => match p.strip_prefix("~/") {
                Some(rest) => home()?.join(rest),
                None => PathBuf::from(p),
            },
            None => home()?.join(".rdagent").join("artifact_signing.key"),
        };
        let bytes = std::fs::read(&file).ok().filter(|b| !b.is_empty())?;
        Some(SigningKey::new(bytes, file.display().to_string()))
    }

    pub fn mac(&self, payload: &[u8]) -> [u8; 32] {
        hmac_sha256(&self.bytes, payload)
    }

    /// `mac`, calling `done(n)` after each `REPORT_EVERY` bytes hashed (`n` bytes of `payload` are then never
    /// read again).
    pub fn mac_reporting(&self, payload: &[u8], done: &dyn Fn(usize)) -> [u8; 32] {
        hmac_sha256_reporting(&self.bytes, payload, done)
    }
}

/// What the signature of one snapshot says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signature {
    /// A bare pickle (RD-Agent before 1.0, or 1.0 with unsafe legacy pickles allowed).
    Unsigned,
    /// Signed, but no key was available to check it.
    Unchecked,
    /// Signed, and not checked because the command does not check unless asked (`resolve` without
    /// `--verify`).
    Skipped,
    /// Signed, and the HMAC matches the key from this source.
    Verified { key_source: String },
    /// Signed, and the HMAC does not match the key from this source.
    Mismatch { key_source: String },
}

/// Whether a command checks the signatures of the snapshots it reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Verify {
    /// With the key, when one is at hand (`inspect`, `export`, `report`, the chain, a resume).
    #[default]
    WithKeyAtHand,
    /// Not at all: a signed snapshot's signature is `Skipped` (`resolve`, which only reads a path out of the
    /// snapshot and runs nothing in it).
    No,
    /// With the key, which must be at hand, and anything but `Verified` is an error (`resolve --verify`).
    Required,
}

impl Verify {
    /// The key this policy checks with: from the environment unless it checks nothing; `Required` without
    /// one is a usage error.
    pub fn key(self, env: &BTreeMap<String, String>) -> crate::Result<Option<SigningKey>> {
        match self {
            Verify::No => Ok(None),
            Verify::WithKeyAtHand => Ok(SigningKey::from_env(env)),
            Verify::Required => SigningKey::from_env(env).map(Some).ok_or_else(|| {
                crate::Error::usage(
                    "--verify needs RD-Agent's signing key: set ARTIFACT_SIGNING_KEY, or ARTIFACT_SIGNING_KEY_PATH \
                     to its key file (default ~/.rdagent/artifact_signing.key, which RD-Agent writes on its first \
                     signed snapshot)",
                )
            }),
        }
    }

    /// What the policy makes of a read snapshot's `signature`: `Skipped` when it checks nothing, an error
    /// naming `path` when it requires a verified signature and got another.
    pub fn apply(self, signature: &mut Signature, path: &Path) -> crate::Result<()> {
        match (self, &*signature) {
            (Verify::No, Signature::Unchecked) => *signature = Signature::Skipped,
            (Verify::Required, Signature::Verified { .. })
            | (Verify::No | Verify::WithKeyAtHand, _) => {}
            (Verify::Required, other) => {
                return Err(crate::Error::resolution(format!(
                    "--verify: snapshot {} is not verified: {}",
                    path.display(),
                    other.describe()
                )))
            }
        }
        Ok(())
    }
}

impl Signature {
    /// Check `mac` (the envelope's 32 bytes) over `payload`; `None` mac means an unsigned file.
    pub fn check(mac: Option<&[u8]>, payload: &[u8], key: Option<&SigningKey>) -> Signature {
        let want = match (mac, key) {
            (Some(_), Some(key)) => Some(key.mac(payload)),
            _ => None,
        };
        Signature::judge(mac, want, key)
    }

    /// What a file's envelope `mac` says once the payload's HMAC under `key` is known (`want`, computed only
    /// for a signed file and a key: `None` otherwise).
    pub fn judge(
        mac: Option<&[u8]>,
        want: Option<[u8; 32]>,
        key: Option<&SigningKey>,
    ) -> Signature {
        match (mac, key, want) {
            (None, _, _) => Signature::Unsigned,
            (Some(_), None, _) | (Some(_), Some(_), None) => Signature::Unchecked,
            (Some(mac), Some(key), Some(want)) => {
                // Compare every byte: the time taken says nothing about where they differ.
                let same = mac.len() == want.len()
                    && mac
                        .iter()
                        .zip(want.iter())
                        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                        == 0;
                let key_source = key.source.clone();
                if same {
                    Signature::Verified { key_source }
                } else {
                    Signature::Mismatch { key_source }
                }
            }
        }
    }

    /// One word for JSON: unsigned, unchecked, skipped, verified, mismatch.
    pub fn as_str(&self) -> &'static str {
        match self {
            Signature::Unsigned => "unsigned",
            Signature::Unchecked => "unchecked",
            Signature::Skipped => "skipped",
            Signature::Verified { .. } => "verified",
            Signature::Mismatch { .. } => "mismatch",
        }
    }

    pub fn key_source(&self) -> Option<&str> {
        match self {
            Signature::Verified { key_source } | Signature::Mismatch { key_source } => {
                Some(key_source)
            }
            _ => None,
        }
    }

    /// A phrase for the text output.
    pub fn describe(&self) -> String {
        match self {
            Signature::Unsigned => "bare pickle (unsigned)".to_string(),
            Signature::Unchecked => "signed (RDAGENT_SIGNED_PICKLE_V1; HMAC not checked: no key, set \
                                     ARTIFACT_SIGNING_KEY or ~/.rdagent/artifact_signing.key)"
                .to_string(),
            Signature::Skipped => "signed (RDAGENT_SIGNED_PICKLE_V1; HMAC not checked: resolve checks it \
                                   with --verify)"
                .to_string(),
            Signature::Verified { key_source } => {
                format!("signed (RDAGENT_SIGNED_PICKLE_V1; HMAC verified with the key from {key_source})")
            }
            Signature::Mismatch { key_source } => format!(
                "signed (RDAGENT_SIGNED_PICKLE_V1; HMAC does NOT match the key from {key_source}: the file was \
                 changed after RD-Agent wrote it, or signed with another key)"
            ),
        }
    }
}

const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// Incremental SHA-256.
#[derive(Clone)]
struct Sha256 {
    state: [u32; 8],
    block: [u8; 64],
    filled: usize,
    length: u64,
}

impl Sha256 {
    fn new() -> Sha256 {
        Sha256 {
            state: [
                0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
                0x5be0cd19,
            ],
            block: [0; 64],
            filled: 0,
            length: 0,
        }
    }

    fn update(&mut self, mut data: &[u8]) {
        self.length = self.length.wrapping_add(data.len() as u64);
        if self.filled > 0 {
            let take = (64 - self.filled).min(data.len());
            self.block[self.filled..self.filled + take].copy_from_slice(&data[..take]);
            self.filled += take;
            data = &data[take..];
            if self.filled < 64 {
                return;
            }
            let block = self.block;
            compress_blocks(&mut self.state, &block);
            self.filled = 0;
        }
        let whole = data.len() - data.len() % 64;
        compress_blocks(&mut self.state, &data[..whole]);
        let rest = &data[whole..];
        self.block[..rest.len()].copy_from_slice(rest);
        self.filled = rest.len();
    }

    fn finish(mut self) -> [u8; 32] {
        let bits = self.length.wrapping_mul(8);
        self.update(&[0x80]);
        while self.filled != 56 {
            self.update(&[0]);
        }
        self.update(&bits.to_be_bytes());
        let mut out = [0u8; 32];
        for (chunk, word) in out.chunks_exact_mut(4).zip(self.state) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        out
    }
}

/// Run the compression function over `blocks` (a multiple of 64 bytes): with the CPU's SHA extensions where
/// there are some (x86-64 SHA-NI: about 10x faster, so a 20 MB snapshot costs milliseconds), else portably.
fn compress_blocks(state: &mut [u32; 8], blocks: &[u8]) {
    debug_assert_eq!(blocks.len() % 64, 0);
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("sha")
        && std::arch::is_x86_feature_detected!("sse4.1")
        && std::arch::is_x86_feature_detected!("ssse3")
    {
        // SAFETY: the features the function is compiled for were just detected on this CPU.
        unsafe { shani::compress_blocks(state, blocks) };
        return;
    }
    compress_blocks_portable(state, blocks);
}

fn compress_blocks_portable(state: &mut [u32; 8], blocks: &[u8]) {
    for block in blocks.chunks_exact(64) {
        let mut w = [0u32; 64];
        for (i, chunk) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *state;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = h
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            h = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (s, v) in state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
            *s = s.wrapping_add(v);
        }
    }
}

/// SHA-256 with the x86-64 SHA extensions. The state is kept as the two registers the instructions work on,
/// ABEF and CDGH; the message schedule lives in four registers rotated through `w0..w4`.
#[cfg(target_arch = "x86_64")]
mod shani {
    use super::K;
    use std::arch::x86_64::*;

    /// Four rounds with message words `w` (K added here).
    macro_rules! rounds4 {
        ($abef:ident, $cdgh:ident, $w:expr, $i:expr) => {{
            let k = _mm_loadu_si128(K.as_ptr().add(4 * $i) as *const __m128i);
            let wk = _mm_add_epi32($w, k);
            $cdgh = _mm_sha256rnds2_epu32($cdgh, $abef, wk);
            $abef = _mm_sha256rnds2_epu32($abef, $cdgh, _mm_shuffle_epi32(wk, 0x0E));
        }};
    }

    /// The next four message words from the previous sixteen, then four rounds with them.
    macro_rules! schedule_rounds4 {
        ($abef:ident, $cdgh:ident, $w0:ident, $w1:ident, $w2:ident, $w3:ident, $w4:ident, $i:expr) => {{
            let t = _mm_add_epi32(_mm_sha256msg1_epu32($w0, $w1), _mm_alignr_epi8($w3, $w2, 4));
            $w4 = _mm_sha256msg2_epu32(t, $w3);
            rounds4!($abef, $cdgh, $w4, $i);
        }};
    }

    /// # Safety
    /// The CPU must support SHA, SSSE3 and SSE4.1; `blocks.len()` must be a multiple of 64.
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    pub unsafe fn compress_blocks(state: &mut [u32; 8], blocks: &[u8]) {
        // Big-endian words in each 32-bit lane.
        let mask = _mm_set_epi64x(0x0c0d_0e0f_0809_0a0b, 0x0405_0607_0001_0203);
        let dcba = _mm_loadu_si128(state.as_ptr() as *const __m128i);
        let hgfe = _mm_loadu_si128(state.as_ptr().add(4) as *const __m128i);
        let cdab = _mm_shuffle_epi32(dcba, 0xB1);
        let efgh = _mm_shuffle_epi32(hgfe, 0x1B);
        let mut abef = _mm_alignr_epi8(cdab, efgh, 8);
        let mut cdgh = _mm_blend_epi16(efgh, cdab, 0xF0);

        for block in blocks.chunks_exact(64) {
            let (abef_before, cdgh_before) = (abef, cdgh);
            let p = block.as_ptr() as *const __m128i;
            let mut w0 = _mm_shuffle_epi8(_mm_loadu_si128(p), mask);
            let mut w1 = _mm_shuffle_epi8(_mm_loadu_si128(p.add(1)), mask);
            let mut w2 = _mm_shuffle_epi8(_mm_loadu_si128(p.add(2)), mask);
            let mut w3 = _mm_shuffle_epi8(_mm_loadu_si128(p.add(3)), mask);
            let mut w4;
            rounds4!(abef, cdgh, w0, 0);
            rounds4!(abef, cdgh, w1, 1);
            rounds4!(abef, cdgh, w2, 2);
            rounds4!(abef, cdgh, w3, 3);
            schedule_rounds4!(abef, cdgh, w0, w1, w2, w3, w4, 4);
            schedule_rounds4!(abef, cdgh, w1, w2, w3, w4, w0, 5);
            schedule_rounds4!(abef, cdgh, w2, w3, w4, w0, w1, 6);
            schedule_rounds4!(abef, cdgh, w3, w4, w0, w1, w2, 7);
            schedule_rounds4!(abef, cdgh, w4, w0, w1, w2, w3, 8);
            schedule_rounds4!(abef, cdgh, w0, w1, w2, w3, w4, 9);
            schedule_rounds4!(abef, cdgh, w1, w2, w3, w4, w0, 10);
            schedule_rounds4!(abef, cdgh, w2, w3, w4, w0, w1, 11);
            schedule_rounds4!(abef, cdgh, w3, w4, w0, w1, w2, 12);
            schedule_rounds4!(abef, cdgh, w4, w0, w1, w2, w3, 13);
            schedule_rounds4!(abef, cdgh, w0, w1, w2, w3, w4, 14);
            schedule_rounds4!(abef, cdgh, w1, w2, w3, w4, w0, 15);
            abef = _mm_add_epi32(abef, abef_before);
            cdgh = _mm_add_epi32(cdgh, cdgh_before);
        }

        let feba = _mm_shuffle_epi32(abef, 0x1B);
        let dchg = _mm_shuffle_epi32(cdgh, 0xB1);
        let dcba = _mm_blend_epi16(feba, dchg, 0xF0);
        let hgef = _mm_alignr_epi8(dchg, feba, 8);
        _mm_storeu_si128(state.as_mut_ptr() as *mut __m128i, dcba);
        _mm_storeu_si128(state.as_mut_ptr().add(4) as *mut __m128i, hgef);
    }
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(data);
    h.finish()
}

/// HMAC-SHA256 (RFC 2104) of `message` under `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    hmac_sha256_reporting(key, message, &|_| {})
}

/// `hmac_sha256`, calling `done(n)` after each `REPORT_EVERY` bytes of `message` hashed.
pub fn hmac_sha256_reporting(key: &[u8], message: &[u8], done: &dyn Fn(usize)) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&sha256(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(&block.map(|b| b ^ 0x36));
    let mut hashed = 0;
    for chunk in message.chunks(crate::pickle::REPORT_EVERY) {
        inner.update(chunk);
        hashed += chunk.len();
        done(hashed);
    }
    let inner = inner.finish();
    let mut outer = Sha256::new();
    outer.update(&block.map(|b| b ^ 0x5c));
    outer.update(&inner);
    outer.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn sha256_matches_the_fips_vectors() {
        assert_eq!(
            hex(&sha256(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex(&sha256(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
        assert_eq!(
            hex(&sha256(&vec![b'a'; 1_000_000])),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
        );
    }

    #[test]
    fn incremental_updates_equal_one_update() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        for split in [0, 1, 55, 56, 63, 64, 65, 128, 999] {
            let mut h = Sha256::new();
            h.update(&data[..split]);
            h.update(&data[split..]);
            assert_eq!(h.finish(), sha256(&data), "split at {split}");
        }
    }

    #[test]
    fn the_cpu_path_and_the_portable_path_agree() {
        // On a CPU with SHA extensions `compress_blocks` takes them; the portable code must give the same.
        let data: Vec<u8> = (0..64 * 40u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        for blocks in [1, 2, 7, 40] {
            let mut fast = Sha256::new().state;
            let mut portable = fast;
            compress_blocks(&mut fast, &data[..64 * blocks]);
            compress_blocks_portable(&mut portable, &data[..64 * blocks]);
            assert_eq!(fast, portable, "{blocks} blocks");
        }
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 1.
        assert_eq!(
            hex(&hmac_sha256(&[0x0b; 20], b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        // Test case 2.
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block.
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn check_tells_the_four_cases_apart() {
        let key = SigningKey::new(b"k".to_vec(), "test");
        let mac = key.mac(b"payload");
        assert_eq!(
            Signature::check(None, b"payload", Some(&key)),
            Signature::Unsigned
        );
        assert_eq!(
            Signature::check(Some(&mac), b"payload", None),
            Signature::Unchecked
        );
        assert_eq!(
            Signature::check(Some(&mac), b"payload", Some(&key)).as_str(),
            "verified"
        );
        assert_eq!(
            Signature::check(Some(&mac), b"payloaD", Some(&key)).as_str(),
            "mismatch"
        );
        assert_eq!(
            Signature::check(Some(&mac[..31]), b"payload", Some(&key)).as_str(),
            "mismatch"
        );
    }

    #[test]
    fn the_key_comes_from_the_variable_then_the_home_file() {
        let env = BTreeMap::from([("ARTIFACT_SIGNING_KEY".to_string(), "secret".to_string())]);
        let key = SigningKey::from_env(&env).unwrap();
        assert_eq!(key.source, "ARTIFACT_SIGNING_KEY");
        assert_eq!(key.bytes, sha256(b"secret"));
        assert!(
            !format!("{key:?}").contains("bytes"),
            "the key is never printed"
        );

        let home = std::env::temp_dir().join(format!("rd-chain-key-test-{}", std::process::id()));
        std::fs::create_dir_all(home.join(".rdagent")).unwrap();
        let env = BTreeMap::from([("HOME".to_string(), home.display().to_string())]);
        assert!(SigningKey::from_env(&env).is_none());
        std::fs::write(home.join(".rdagent/artifact_signing.key"), b"raw key bytes").unwrap();
        let key = SigningKey::from_env(&env).unwrap();
        assert_eq!(key.bytes, b"raw key bytes");
        // ARTIFACT_SIGNING_KEY_PATH moves the file, `~/` included.
        std::fs::write(home.join("elsewhere.key"), b"moved key").unwrap();
        let mut moved = env.clone();
        moved.insert(
            "ARTIFACT_SIGNING_KEY_PATH".to_string(),
            "~/elsewhere.key".to_string(),
        );
        assert_eq!(SigningKey::from_env(&moved).unwrap().bytes, b"moved key");
        assert!(key.source.ends_with("artifact_signing.key"));
        std::fs::remove_dir_all(&home).unwrap();
    }
}
