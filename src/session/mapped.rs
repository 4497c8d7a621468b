//! A snapshot file's bytes: mapped read-only (Linux, files of `MAP_FROM` bytes or more that have not changed
//! for `STABLE_FOR`) or read into a buffer (everything else).
//!
//! Mapping costs no copy and no private memory: the pages are the page cache's. The one danger of a mapping is
//! a file that shrinks while it is mapped (a resumed RD-Agent run rewrites step files in place): touching a
//! page past the new end raises SIGBUS, which would kill the process. rd-chain makes that impossible: while a
//! mapping is in use it is registered here, and a SIGBUS handler replaces every registered mapping with
//! anonymous zero pages (`MAP_FIXED`) and flags it, so the faulting read resumes and reads zeros. The flag is
//! checked after the bytes were used (`Bytes::changed`): the result is then thrown away and the file read again
//! into a buffer, as it is now. A SIGBUS while no mapping is registered is not rd-chain's to handle: the default
//! action is restored and the fault happens again, as without the handler.

use std::fs;
use std::io::Read;
use std::time::{Duration, SystemTime};

/// Files smaller than this are read: mapping and unmapping a few pages costs more than copying them.
pub const MAP_FROM: u64 = 256 * 1024;
/// Files modified less than this long ago are read, not mapped: they may still be being written.
pub const STABLE_FOR: Duration = Duration::from_secs(2);
/// A mapping smaller than this keeps its pages (`Bytes::release_before` does nothing): the memory given back
/// would be a few MiB at most, and giving it back costs system calls and page-table work (2% of `resolve` on
/// a 3 MB snapshot).
pub const RELEASE_FROM: usize = 8 << 20;

/// The bytes of one file, mapped or read.
pub enum Bytes {
    Read(Vec<u8>),
    #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
    Mapped(map::Mapping),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Read(v) => v,
            #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
            Bytes::Mapped(m) => m.as_slice(),
        }
    }
}

impl Bytes {
    /// Whether the file shrank under the mapping since it was made (its bytes then read as zeros past the
    /// fault: whatever was computed from them must be thrown away). Always false for bytes that were read.
    pub fn changed(&self) -> bool {
        match self {
            Bytes::Read(_) => false,
            #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
            Bytes::Mapped(m) => m.faulted(),
        }
    }

    pub fn is_mapped(&self) -> bool {
        !matches!(self, Bytes::Read(_))
    }

    /// Nothing before byte `upto` will be read again soon: a mapping of `RELEASE_FROM` bytes or more gives
    /// those pages back (they leave this process's resident memory and stay in the page cache; a later read
    /// maps them in again, with the same bytes). Read bytes and smaller mappings stay as they are.
    pub fn release_before(&self, upto: usize) {
        match self {
            Bytes::Read(_) => {}
            #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
            Bytes::Mapped(m) => m.release_before(upto),
        }
    }
}

/// The first `len` bytes of an open file (fewer if it shrank), never more, whatever is appended meanwhile.
pub fn read_at_most(file: fs::File, len: u64) -> std::io::Result<Vec<u8>> {
    let mut data = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(len).read_to_end(&mut data)?;
    Ok(data)
}

/// The first `len` bytes (its size when opened) of `file`: mapped when it is large and has not changed for
/// `STABLE_FOR`, else read. `modified` is its modification time when opened.
///
/// Pages are mapped in as they are touched, so the byte payloads the decoder skips (numpy blobs) never become
/// resident, and readers give pages back behind them (`Bytes::release_before`): the file never has to be
/// resident as a whole.
pub fn open_bytes(
    file: fs::File,
    len: u64,
    modified: Option<SystemTime>,
) -> std::io::Result<Bytes> {
    #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
    {
        let stable = modified
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .is_some_and(|age| age >= STABLE_FOR);
        if len >= MAP_FROM && stable {
            if let Some(m) = map::Mapping::new(&file, len, modified) {
                return Ok(Bytes::Mapped(m));
            }
        }
    }
    let _ = modified;
    read_at_most(file, len).map(Bytes::Read)
}

#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
pub(crate) mod map {
    use std::os::raw::{c_int, c_void};
    use std::os::unix::io::AsRawFd;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Once;
    use std::time::SystemTime;

    const PROT_READ: c_int = 1;
    const MAP_PRIVATE: c_int = 2;
    const MAP_FIXED: c_int = 0x10;
    const MAP_ANONYMOUS: c_int = 0x20;
    const MADV_DONTNEED: c_int = 4;
    const BLOCK: usize = 2 << 20;
    const SIGBUS: c_int = 7;
    const MAP_FAILED: *mut c_void = !0usize as *mut c_void;

    // `signal` takes `Option<fn>` here (None is SIG_DFL, the null pointer): the same C function as the one
    // `process` declares with a plain fn pointer, and the same ABI.
    #[allow(clashing_extern_declarations)]
    extern "C" {
        fn mmap(
            addr: *mut c_void,
            len: usize,
            prot: c_int,
            flags: c_int,
            fd: c_int,
            off: i64,
        ) -> *mut c_void;
        fn munmap(addr: *mut c_void, len: usize) -> c_int;
        fn madvise(addr: *mut c_void, len: usize, advice: c_int) -> c_int;
        fn signal(signum: c_int, handler: Option<extern "C" fn(c_int)>) -> usize;
    }

    /// Mappings in use: (start, length) with length 0 for a free slot, and whether a SIGBUS zeroed it. A fixed
    /// table the handler can read without locks; when every slot is taken, files are read instead.
    const SLOTS: usize = 16;
    static STARTS: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
    static LENS: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
    static FAULTED: [AtomicBool; SLOTS] = [const { AtomicBool::new(false) }; SLOTS];
    /// Serialises taking a slot (the handler only reads).
    static TAKE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    static HANDLER: Once = Once::new();

    extern "C" fn on_sigbus(_sig: c_int) {
        let mut any = false;
        for i in 0..SLOTS {
            let len = LENS[i].load(Ordering::SeqCst);
            if len == 0 {
                continue;
            }
            let start = STARTS[i].load(Ordering::SeqCst);
            // SAFETY: [start, start+len) is a mapping this module made and has not unmapped (the slot is freed
            // before munmap); replacing it with zero pages in place keeps every pointer into it valid.
            unsafe {
                mmap(
                    start as *mut c_void,
                    len,
                    PROT_READ,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
                    -1,
                    0,
                );
            }
            FAULTED[i].store(true, Ordering::SeqCst);
            any = true;
        }
        if !any {
            // Not a fault in a snapshot mapping: let it happen again with the default action.
            // SAFETY: signal(2) is async-signal-safe.
            unsafe {
                signal(SIGBUS, None); // SIG_DFL
            }
        }
    }

    /// A read-only private mapping of the first `len` bytes of a file, registered with the SIGBUS handler.
    pub struct Mapping {
        start: *mut c_void,
        len: usize,
        slot: usize,
        /// Bytes before this have been given back (`release_before`).
        released: AtomicUsize,
    }

    // SAFETY: the mapping is read-only and never moves; sharing `&[u8]` into it across threads is as safe as
    // sharing a `&[u8]` into a Vec.
    unsafe impl Send for Mapping {}
    unsafe impl Sync for Mapping {}

    impl Mapping {
        /// Map `file`, whose size was `len` and modification time `modified` when opened; `None` (read it
        /// instead) when it cannot be mapped, no slot is free, or its size or time changed by the time it was
        /// mapped.
        pub fn new(
            file: &std::fs::File,
            len: u64,
            modified: Option<SystemTime>,
        ) -> Option<Mapping> {
            let len = usize::try_from(len).ok().filter(|l| *l > 0)?;
            HANDLER.call_once(|| {
                // SAFETY: installs a handler that only makes async-signal-safe calls (mmap over its own
                // mapping, signal) and touches atomics.
                unsafe {
                    signal(SIGBUS, Some(on_sigbus));
                }
            });
            let _guard = TAKE.lock().unwrap_or_else(|e| e.into_inner());
            let slot = (0..SLOTS).find(|i| LENS[*i].load(Ordering::SeqCst) == 0)?;
            // SAFETY: a fresh read-only private mapping of an open file; the kernel picks the address.
            let flags = MAP_PRIVATE;
            let start = unsafe {
                mmap(
                    std::ptr::null_mut(),
                    len,
                    PROT_READ,
                    flags,
                    file.as_raw_fd(),
                    0,
                )
            };
            if start == MAP_FAILED || start.is_null() {
                return None;
            }
            FAULTED[slot].store(false, Ordering::SeqCst);
            STARTS[slot].store(start as usize, Ordering::SeqCst);
            LENS[slot].store(len, Ordering::SeqCst);
            let mapping = Mapping {
                start,
                len,
                slot,
                released: AtomicUsize::new(0),
            };
            // The size and time once more, now that it is mapped: a file being rewritten is read instead.
            let meta = file.metadata().ok()?;
            if meta.len() != len as u64 || meta.modified().ok() != modified {
                return None;
            }
            Some(mapping)
        }

        pub fn as_slice(&self) -> &[u8] {
            // SAFETY: `len` readable bytes at `start` until drop; a shrinking file cannot make them unreadable
            // (the SIGBUS handler puts zero pages in their place).
            unsafe { std::slice::from_raw_parts(self.start as *const u8, self.len) }
        }

        pub fn faulted(&self) -> bool {
            FAULTED[self.slot].load(Ordering::SeqCst)
        }

        /// Drop this process's page-table entries before `upto` (MADV_DONTNEED), in whole 2 MiB blocks of
        /// the address space: the page cache may hold the file in large folios mapped 2 MiB at a time, and
        /// giving back part of one drops all of it, pages past `upto` too. On a private file mapping never
        /// written to, that only unmaps (`upto` at the end gives everything back): the next read of a page maps
        /// the page cache's page in again, so the bytes stay what they were (or zeros after a SIGBUS swap, which
        /// then has flagged the mapping). Each block is given back once, by whichever thread gets there first.
        /// A mapping under `RELEASE_FROM` bytes keeps its pages.
        pub fn release_before(&self, upto: usize) {
            if self.len < super::RELEASE_FROM {
                return;
            }
            let start = self.start as usize;
            let end = if upto >= self.len {
                self.len
            } else {
                ((start + upto) / BLOCK * BLOCK).saturating_sub(start)
            };
            let from = self.released.fetch_max(end, Ordering::SeqCst);
            if end > from {
                // SAFETY: [from, end) lies inside our live mapping; MADV_DONTNEED on a read-only private file
                // mapping never loses data (see above). A failure leaves the pages resident: only memory.
                unsafe {
                    madvise(
                        self.start.cast::<u8>().add(from).cast(),
                        end - from,
                        MADV_DONTNEED,
                    );
                }
            }
        }
    }

    impl Drop for Mapping {
        fn drop(&mut self) {
            LENS[self.slot].store(0, Ordering::SeqCst);
            STARTS[self.slot].store(0, Ordering::SeqCst);
            // SAFETY: our own mapping, no longer registered and no longer borrowed (drop has &mut self).
            unsafe {
                munmap(self.start, self.len);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn temp_file(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("rd-chain-mapped-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("0_x");
        fs::write(&path, bytes).unwrap();
        path
    }

    fn open(path: &std::path::Path, age: Duration) -> Bytes {
        let file = fs::File::open(path).unwrap();
        let meta = file.metadata().unwrap();
        // Pretend the file is `age` old by passing the time it had, shifted: the rule only compares.
        let modified = meta.modified().unwrap();
        if age >= STABLE_FOR {
            let old = SystemTime::now() - age;
            file.set_modified(old).unwrap();
            return open_bytes(file, meta.len(), Some(old)).unwrap();
        }
        open_bytes(file, meta.len(), Some(modified)).unwrap()
    }

    #[test]
    fn large_stable_files_are_mapped_new_and_small_ones_read() {
        let big: Vec<u8> = (0..MAP_FROM as usize + 10)
            .map(|i| (i % 251) as u8)
            .collect();
        let path = temp_file("rules", &big);
        let fresh = open(&path, Duration::ZERO);
        assert!(!fresh.is_mapped(), "a file written just now is read");
        assert_eq!(&fresh[..], &big[..]);
        let old = open(&path, Duration::from_secs(60));
        #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
        assert!(
            old.is_mapped(),
            "a large file unchanged for a minute is mapped"
        );
        assert_eq!(&old[..], &big[..]);
        assert!(!old.changed());
        let small = temp_file("small", &big[..1000]);
        let small = open(&small, Duration::from_secs(60));
        assert!(!small.is_mapped());
        assert_eq!(&small[..], &big[..1000]);
    }

    /// Resident KiB of the mapping that starts at `start`, from /proc/self/smaps.
    #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
    fn resident_kib(start: *const u8) -> u64 {
        let smaps = fs::read_to_string("/proc/self/smaps").unwrap();
        let head = format!("{:x}-", start as usize);
        let mut lines = smaps.lines().skip_while(|l| !l.starts_with(&head));
        assert!(lines.next().is_some(), "no mapping at {head}");
        let rss = lines.find(|l| l.starts_with("Rss:")).unwrap();
        rss.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
    #[test]
    fn released_pages_leave_resident_memory_and_read_back_the_same() {
        let big: Vec<u8> = (0..RELEASE_FROM).map(|i| (i % 251) as u8).collect();
        let path = temp_file("release", &big);
        let bytes = open(&path, Duration::from_secs(60));
        assert!(bytes.is_mapped());
        let sum = |b: &[u8]| b.iter().map(|&x| u64::from(x)).sum::<u64>();
        let whole = sum(&big);
        assert_eq!(sum(&bytes), whole);
        let all = resident_kib(bytes.as_ptr());
        assert!(all >= 8180, "{all} KiB resident after reading 8 MiB");
        // Given back before 4 MiB: whole 2 MiB blocks of the address space before the cut leave (2 or 4 MiB,
        // by where the mapping starts), nothing after it.
        bytes.release_before(bytes.len() / 2 + 100);
        let half = resident_kib(bytes.as_ptr());
        let gone = all - half;
        assert!((2048..=4096).contains(&gone), "{all} -> {half} KiB");
        // Giving back less than before, or again, changes nothing.
        bytes.release_before(10);
        bytes.release_before(bytes.len() / 2);
        assert_eq!(resident_kib(bytes.as_ptr()), half);
        // Read again: the same bytes, mapped in from the page cache; not flagged as changed.
        assert_eq!(sum(&bytes), whole);
        assert_eq!(&bytes[..], &big[..]);
        assert!(!bytes.changed());
        // Everything past the earlier cut leaves; what was read again before it stays (given back once).
        bytes.release_before(usize::MAX);
        assert_eq!(resident_kib(bytes.as_ptr()), gone);
        // Read bytes ignore it.
        let read = open(&path, Duration::ZERO);
        read.release_before(usize::MAX);
        assert_eq!(&read[..], &big[..]);
        // So does a mapping smaller than `RELEASE_FROM`: it stays resident.
        let path = temp_file("release-small", &big[..RELEASE_FROM - 4096]);
        let small = open(&path, Duration::from_secs(60));
        assert!(small.is_mapped());
        assert_eq!(sum(&small), sum(&big[..RELEASE_FROM - 4096]));
        let before = resident_kib(small.as_ptr());
        assert!(
            before >= 8180 - 4,
            "{before} KiB resident after reading 8 MiB less a page"
        );
        small.release_before(usize::MAX);
        assert_eq!(resident_kib(small.as_ptr()), before);
    }

    /// A mapped file cut short by another writer: reading past its new end gives zeros and a flag, never a
    /// SIGBUS (this test process would die of it).
    #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
    #[test]
    fn a_file_that_shrinks_while_mapped_reads_as_zeros_and_is_flagged_never_sigbus() {
        let big = vec![0xABu8; 4 * MAP_FROM as usize];
        let path = temp_file("shrink", &big);
        let bytes = open(&path, Duration::from_secs(60));
        assert!(bytes.is_mapped());
        let mut writer = fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        writer.write_all(b"short").unwrap();
        writer.flush().unwrap();
        drop(writer);
        // The last page is past the file's new end: without the handler this read is a SIGBUS.
        let last = bytes[bytes.len() - 1];
        assert!(bytes.changed(), "the fault is flagged");
        assert_eq!(last, 0, "pages past the new end read as zeros");
        assert_eq!(bytes.len(), big.len());
        drop(bytes);
        // A later mapping starts unflagged.
        fs::write(&path, &big).unwrap();
        let again = open(&path, Duration::from_secs(60));
        assert!(again.is_mapped() && !again.changed());
        assert_eq!(again[again.len() - 1], 0xAB);
    }
}
