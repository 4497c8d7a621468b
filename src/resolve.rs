//! Which workspace holds the state-of-the-art factors: the pick policy, the path mapping and the parquet check.
//!
//! A recorded workspace path is tried, in order, as recorded (absolute), against the project root (relative),
//! through the Windows <-> WSL drive mapping, then by its last segment (the uuid) under `$WORKSPACE_PATH` and
//! under `<project root>/git_ignore_folder/RD-Agent_workspace`. The project root is the directory RD-Agent ran
//! in: given by the caller, else the parent of `log/` for `<root>/log/<run>`, else the log directory's parent.
//!
//! Never guesses silently: every fallback mapping is named, and when nothing exists the error lists every path
//! tried. Never reads the parquet table itself (only its magic bytes), never writes anything.

use std::cell::OnceCell;
use std::fmt;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use crate::session::{
    self, ExperimentKind, HistoryEntry, PathFlavour, RecordedPath, Session, SigningKey, Skipped,
    SnapshotInfo, Verify,
};
use crate::Error;

/// Which history entry's workspace to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Pick {
    /// RD-Agent's own definition: the last factor experiment whose feedback decision is true.
    #[default]
    Sota,
    /// The last factor experiment whose `combined_factors_df.parquet` exists.
    Latest,
    /// The factor experiment of this loop.
    Loop(u64),
}

/// Why a `--pick` value was not understood.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PickParseError(String);

impl fmt::Display for PickParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown pick policy '{}': use sota, latest or loop:N (N a loop number, e.g. loop:3)",
            self.0
        )
    }
}

impl std::error::Error for PickParseError {}

impl FromStr for Pick {
    type Err = PickParseError;

    fn from_str(s: &str) -> Result<Pick, PickParseError> {
        let text = s.trim();
        match text.to_ascii_lowercase().as_str() {
            "sota" => return Ok(Pick::Sota),
            "latest" => return Ok(Pick::Latest),
            _ => {}
        }
        if let Some((head, n)) = text.split_once(':') {
            if head.eq_ignore_ascii_case("loop") {
                if let Ok(n) = n.trim().parse::<u64>() {
                    return Ok(Pick::Loop(n));
                }
            }
        }
        Err(PickParseError(s.to_string()))
    }
}

impl fmt::Display for Pick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pick::Sota => f.write_str("sota"),
            Pick::Latest => f.write_str("latest"),
            Pick::Loop(n) => write!(f, "loop:{n}"),
        }
    }
}

/// The factor table RD-Agent's factor runner writes into each experiment workspace.
pub const PARQUET_FILE: &str = crate::hook::contract::FACTORS_FILE;
/// RD-Agent's default workspace root, relative to the directory it ran in.
pub const PROJECT_WORKSPACE_DIR: &str = "git_ignore_folder/RD-Agent_workspace";
/// Magic bytes at both ends of a parquet file.
const PARQUET_MAGIC: &[u8; 4] = b"PAR1";
/// Leading magic + 4-byte footer length + trailing magic.
const PARQUET_MIN_BYTES: u64 = 12;

/// What to resolve, with everything taken from the environment passed in (nothing read from the process).
#[derive(Clone, Debug, PartialEq)]
pub struct ResolveRequest {
    /// A log directory, its `__session__` directory, or one snapshot file; relative to `cwd`.
    pub path: PathBuf,
    pub pick: Pick,
    /// `WORKSPACE_PATH` as set for rd-chain (relative: against `cwd`).
    pub workspace_path_env: Option<PathBuf>,
    /// The directory relative paths are taken against.
    pub cwd: PathBuf,
    /// The key signed snapshots are checked with (`Verify::key`); `None`: not checked.
    pub signing_key: Option<SigningKey>,
    /// What is made of the snapshot's signature (`Verify::apply`).
    pub verify: Verify,
    /// The directory RD-Agent ran in, when the caller knows it; `None`: derived from the log dir
    /// (see `project_root_of`).
    pub project_root: Option<PathBuf>,
    /// Whether the history's metrics are read (`Reading::WithoutMetrics` only where nothing shows them).
    pub reading: session::Reading,
}

impl ResolveRequest {
    pub fn new(path: impl Into<PathBuf>, cwd: impl Into<PathBuf>) -> ResolveRequest {
        ResolveRequest {
            path: path.into(),
            pick: Pick::Sota,
            workspace_path_env: None,
            cwd: cwd.into(),
            signing_key: None,
            verify: Verify::default(),
            project_root: None,
            reading: session::Reading::Everything,
        }
    }
}

/// How a recorded workspace path became an existing directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mapping {
    /// The recorded absolute path exists as it is.
    Recorded,
    /// A relative recorded path, joined to the project root.
    Relative,
    /// The same `<uuid>` under `<project root>/git_ignore_folder/RD-Agent_workspace`.
    ProjectWorkspace,
    /// The same `<uuid>` under `$WORKSPACE_PATH`.
    EnvWorkspace,
    /// `F:\a\b` read on Linux as `/mnt/f/a/b`.
    WindowsToWsl,
    /// `/mnt/f/a/b` read on Windows as `F:\a\b`.
    WslToWindows,
}

impl Mapping {
    pub fn as_str(self) -> &'static str {
        match self {
            Mapping::Recorded => "recorded",
            Mapping::Relative => "relative",
            Mapping::ProjectWorkspace => "project-workspace",
            Mapping::EnvWorkspace => "env-workspace",
            Mapping::WindowsToWsl => "windows-to-wsl",
            Mapping::WslToWindows => "wsl-to-windows",
        }
    }
}

impl fmt::Display for Mapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An existing workspace directory and how it was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    pub path: PathBuf,
    pub mapping: Mapping,
}

/// Where recorded paths may live now.
#[derive(Clone, Copy, Debug)]
pub struct MappingContext<'a> {
    pub project_root: &'a Path,
    pub workspace_env: Option<&'a Path>,
    /// The path syntax of this machine (`PathFlavour::host()`; a parameter so both directions are testable).
    pub host: PathFlavour,
}

/// Lexically absolute: `p` against `cwd`, without `.` and with `..` applied to the text (symlinks are kept as
/// the user wrote them).
pub fn absolute(cwd: &Path, p: &Path) -> PathBuf {
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        cwd.join(p)
    };
    let mut out = PathBuf::new();
    for component in joined.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if matches!(out.components().next_back(), Some(Component::Normal(_))) {
                    out.pop();
                } else if !out.has_root() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// The directory RD-Agent ran in, from its log directory: for `<root>/log/<run>` it is `<root>` (RD-Agent's
/// default layout); for a log directory anywhere else (`LOG_TRACE_PATH`) it is the log directory's parent.
pub fn project_root_of(log_dir: &Path) -> PathBuf {
    match log_dir.parent() {
        Some(parent) if parent.file_name() == Some(std::ffi::OsStr::new("log")) => {
            parent.parent().unwrap_or(parent).to_path_buf()
        }
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => log_dir.to_path_buf(),
    }
}

fn host_path(host: PathFlavour, prefix: &str, segments: &[&str]) -> PathBuf {
    let sep = match host {
        PathFlavour::Posix => "/",
        PathFlavour::Windows => "\\",
    };
    PathBuf::from(format!("{prefix}{}", segments.join(sep)))
}

/// Every place a recorded path may be now, in the order tried, without duplicates.
pub fn mapping_candidates(
    recorded: &RecordedPath,
    ctx: &MappingContext<'_>,
) -> Vec<(Mapping, PathBuf)> {
    let mut out: Vec<(Mapping, PathBuf)> = Vec::new();
    let split = recorded.split();
    let mut push = |mapping: Mapping, path: PathBuf| {
        if !out.iter().any(|(_, p)| *p == path) {
            out.push((mapping, path));
        }
    };
    let drive_letter = match split.drive.as_bytes() {
        [letter, b':'] if letter.is_ascii_alphabetic() => Some(letter.to_ascii_lowercase() as char),
        _ => None,
    };
    if recorded.is_absolute() && (recorded.flavour == ctx.host || ctx.host == PathFlavour::Windows)
    {
        push(Mapping::Recorded, PathBuf::from(&recorded.text));
    }
    if recorded.is_relative() {
        let rel = host_path(ctx.host, "", &split.segments);
        push(Mapping::Relative, absolute(ctx.project_root, &rel));
    }
    match (ctx.host, recorded.flavour) {
        (PathFlavour::Posix, PathFlavour::Windows) if split.absolute => {
            if let Some(letter) = drive_letter {
                push(
                    Mapping::WindowsToWsl,
                    host_path(ctx.host, &format!("/mnt/{letter}/"), &split.segments),
                );
            }
        }
        (PathFlavour::Windows, PathFlavour::Posix) if split.absolute => {
            if let [mnt, drive, rest @ ..] = split.segments.as_slice() {
                let letter = drive.as_bytes();
                if *mnt == "mnt" && letter.len() == 1 && letter[0].is_ascii_alphabetic() {
                    let prefix = format!("{}:\\", letter[0].to_ascii_uppercase() as char);
                    push(Mapping::WslToWindows, host_path(ctx.host, &prefix, rest));
                }
            }
        }
        _ => {}
    }
    if let Some(uuid) = recorded.last_segment() {
        if let Some(env) = ctx.workspace_env {
            push(Mapping::EnvWorkspace, env.join(uuid));
        }
        push(
            Mapping::ProjectWorkspace,
            ctx.project_root.join(PROJECT_WORKSPACE_DIR).join(uuid),
        );
    }
    out
}

/// The first candidate that is an existing directory, or every candidate tried.
pub fn locate_workspace(
    recorded: &RecordedPath,
    ctx: &MappingContext<'_>,
) -> Result<Located, Vec<(Mapping, PathBuf)>> {
    let candidates = mapping_candidates(recorded, ctx);
    match candidates.iter().find(|(_, path)| path.is_dir()) {
        Some((mapping, path)) => Ok(Located {
            path: path.clone(),
            mapping: *mapping,
        }),
        None => Err(candidates),
    }
}

/// A parquet file that passed the check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParquetInfo {
    pub path: PathBuf,
    pub bytes: u64,
}

/// Why a workspace's parquet file is not usable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParquetProblem {
    Missing,
    Directory,
    NotRegular,
    TooSmall(u64),
    BadMagicStart,
    BadMagicEnd,
    Unreadable(String),
}

impl fmt::Display for ParquetProblem {
    /// Reads after the file's path: "<path> does not exist".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParquetProblem::Missing => f.write_str("does not exist"),
            ParquetProblem::Directory => f.write_str("is a directory, not a file"),
            ParquetProblem::NotRegular => f.write_str("is not a regular file"),
            ParquetProblem::TooSmall(n) => write!(
                f,
                "is too small for a parquet file ({n} bytes; magic, footer length and magic need {PARQUET_MIN_BYTES})"
            ),
            ParquetProblem::BadMagicStart => {
                f.write_str("is not a parquet file (bad magic at start: it does not begin with PAR1)")
            }
            ParquetProblem::BadMagicEnd => f.write_str(
                "is not a complete parquet file (bad magic at end: it does not end with PAR1; cut short while being written?)",
            ),
            ParquetProblem::Unreadable(e) => write!(f, "cannot be read: {e}"),
        }
    }
}

/// Check `<workspace>/combined_factors_df.parquet`: a regular file of at least 12 bytes that starts and ends
/// with `PAR1`. Reads 8 bytes; never parses the table.
pub fn check_parquet(workspace: &Path) -> Result<ParquetInfo, (PathBuf, ParquetProblem)> {
    let path = workspace.join(PARQUET_FILE);
    let fail = |problem| Err((path.clone(), problem));
    let meta = match fs::metadata(&path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return fail(ParquetProblem::Missing),
        Err(e) => return fail(ParquetProblem::Unreadable(e.to_string())),
    };
    if meta.is_dir() {
        return fail(ParquetProblem::Directory);
    }
    if !meta.is_file() {
        return fail(ParquetProblem::NotRegular);
    }
    if meta.len() < PARQUET_MIN_BYTES {
        return fail(ParquetProblem::TooSmall(meta.len()));
    }
    let ends = (|| -> std::io::Result<([u8; 4], [u8; 4])> {
        let mut file = fs::File::open(&path)?;
        let mut head = [0u8; 4];
        file.read_exact(&mut head)?;
        file.seek(SeekFrom::End(-4))?;
        let mut tail = [0u8; 4];
        file.read_exact(&mut tail)?;
        Ok((head, tail))
    })();
    match ends {
        Err(e) => fail(ParquetProblem::Unreadable(e.to_string())),
        Ok((head, _)) if &head != PARQUET_MAGIC => fail(ParquetProblem::BadMagicStart),
        Ok((_, tail)) if &tail != PARQUET_MAGIC => fail(ParquetProblem::BadMagicEnd),
        Ok(_) => Ok(ParquetInfo {
            path: path.clone(),
            bytes: meta.len(),
        }),
    }
}

/// Check a workspace given directly (`--sota-workspace`, `SOTA_WORKSPACE_PATH`): it must be a directory with
/// a valid parquet file.
pub fn check_workspace(dir: &Path) -> crate::Result<ParquetInfo> {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(Error::resolution(format!(
                "the SOTA workspace {} is not a directory: pass an experiment workspace directory \
                 (git_ignore_folder/RD-Agent_workspace/<uuid>)",
                dir.display()
            )))
        }
        Err(e) => {
            return Err(Error::resolution(format!(
                "the SOTA workspace {} does not exist ({e}): pass an existing experiment workspace \
                 (git_ignore_folder/RD-Agent_workspace/<uuid>), or resolve one from a log with `rd-chain resolve LOG`",
                dir.display()
            )))
        }
    }
    check_parquet(dir).map_err(|(path, problem)| {
        Error::resolution(format!(
            "{} {problem}; the SOTA workspace must hold the {PARQUET_FILE} that RD-Agent's factor runner writes",
            path.display()
        ))
    })
}

/// One history entry and where its workspace is now. Where the workspace is, and whether it holds a parquet
/// file, is looked up on first use (`located`, `parquet_exists`) and then remembered: a pick needs only the
/// entries it looks at, so resolving a long run stats one workspace, not one per loop.
#[derive(Clone, Debug)]
pub struct EntryStatus {
    pub entry: HistoryEntry,
    /// The existing workspace directory, if any mapping found one.
    located: OnceCell<Option<Located>>,
    /// `<located>/combined_factors_df.parquet` is a file (not yet checked for magic).
    parquet_exists: OnceCell<bool>,
}

impl EntryStatus {
    /// An entry whose workspace is not looked up yet.
    pub fn new(entry: HistoryEntry) -> EntryStatus {
        EntryStatus {
            entry,
            located: OnceCell::new(),
            parquet_exists: OnceCell::new(),
        }
    }

    /// An entry whose whereabouts are already known (tests of the pick policies).
    #[cfg(test)]
    pub(crate) fn known(
        entry: HistoryEntry,
        located: Option<Located>,
        parquet_exists: bool,
    ) -> EntryStatus {
        EntryStatus {
            entry,
            located: OnceCell::from(located),
            parquet_exists: OnceCell::from(parquet_exists),
        }
    }

    /// The existing workspace directory, if any mapping of the recorded path finds one; mapped on first use.
    pub fn located(&self, ctx: &MappingContext<'_>) -> Option<&Located> {
        self.located
            .get_or_init(|| {
                let recorded = self.entry.workspace.as_ref()?;
                crate::work::add(1); // a workspace lookup (tests count them per pick)
                locate_workspace(recorded, ctx).ok()
            })
            .as_ref()
    }

    /// Whether `<located>/combined_factors_df.parquet` is a file (not checked for magic); stats it on first use.
    pub fn parquet_exists(&self, ctx: &MappingContext<'_>) -> bool {
        *self.parquet_exists.get_or_init(|| {
            self.located(ctx).is_some_and(|l| {
                crate::work::add(1); // a workspace lookup (tests count them per pick)
                l.path.join(PARQUET_FILE).is_file()
            })
        })
    }
}

/// Two statuses are equal when their entries are: what is remembered about the workspace follows from the
/// entry and the survey's mapping context, whether or not it has been looked up yet.
impl PartialEq for EntryStatus {
    fn eq(&self, other: &EntryStatus) -> bool {
        self.entry == other.entry
    }
}

/// A run's history with its workspaces mapped: everything needed to apply a pick policy.
#[derive(Clone, Debug, PartialEq)]
pub struct Survey {
    /// The session read, its history moved into `entries` (`session.history` is left empty: one copy of each
    /// entry, not two).
    pub session: Session,
    pub project_root: PathBuf,
    /// `WORKSPACE_PATH`, absolute.
    pub workspace_env: Option<PathBuf>,
    pub entries: Vec<EntryStatus>,
}

impl Survey {
    /// Where this run's recorded paths may live now (for `EntryStatus::located`).
    pub fn context(&self) -> MappingContext<'_> {
        MappingContext {
            project_root: &self.project_root,
            workspace_env: self.workspace_env.as_deref(),
            host: PathFlavour::host(),
        }
    }

    /// Counts of what the history holds, with how many factor experiments have a parquet file: this maps
    /// every factor experiment's workspace, so it is for messages that print it (`kind_counts` is free).
    pub fn counts(&self) -> HistoryCounts {
        let k = self.kind_counts();
        let ctx = self.context();
        let factor_with_parquet = self
            .entries
            .iter()
            .filter(|s| s.entry.kind == ExperimentKind::Factor && s.parquet_exists(&ctx))
            .count();
        HistoryCounts {
            entries: k.entries,
            factor: k.factor,
            accepted_factor: k.accepted_factor,
            factor_with_parquet,
            model: k.model,
            other: k.other,
        }
    }

    /// Counts of the history's entries by kind and decision, from the history alone (no workspace is looked
    /// at).
    pub fn kind_counts(&self) -> KindCounts {
        let mut c = KindCounts {
            entries: self.entries.len(),
            ..KindCounts::default()
        };
        for status in &self.entries {
            match status.entry.kind {
                ExperimentKind::Factor => {
                    c.factor += 1;
                    c.accepted_factor += usize::from(status.entry.decision == Some(true));
                }
                ExperimentKind::Model => c.model += 1,
                ExperimentKind::Other => c.other += 1,
            }
        }
        c
    }
}

/// What a history holds by kind and decision (`HistoryCounts` without the parquet count).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KindCounts {
    pub entries: usize,
    pub factor: usize,
    pub accepted_factor: usize,
    pub model: usize,
    pub other: usize,
}

/// What a history holds, for messages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HistoryCounts {
    pub entries: usize,
    pub factor: usize,
    pub accepted_factor: usize,
    pub factor_with_parquet: usize,
    pub model: usize,
    pub other: usize,
}

impl fmt::Display for HistoryCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.entries == 0 {
            return f.write_str("0 entries (no loop has reached its feedback step yet)");
        }
        write!(
            f,
            "{} entries: {} factor experiments ({} accepted, {} with a parquet), {} model experiments, {} other",
            self.entries, self.factor, self.accepted_factor, self.factor_with_parquet, self.model, self.other
        )
    }
}

/// The entry a pick policy chose, its workspace and its checked parquet file.
#[derive(Clone, Debug, PartialEq)]
pub struct Picked {
    pub index: usize,
    pub loop_id: Option<u64>,
    pub workspace: PathBuf,
    pub mapping: Mapping,
    pub parquet: ParquetInfo,
    /// Every path tried for this entry, in order (the last one is `workspace`).
    pub paths_tried: Vec<(Mapping, PathBuf)>,
}

/// A survey and the outcome of its pick policy; `inspect` shows both even when the pick failed.
#[derive(Debug)]
pub struct Inspection {
    pub survey: Survey,
    pub pick: Pick,
    pub outcome: crate::Result<Picked>,
}

/// A resolved SOTA workspace and how it was found. The run's whole history is in `survey`.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolution {
    pub log_dir: PathBuf,
    pub pick: Pick,
    /// Position of the picked entry in `trace.hist`.
    pub picked_index: usize,
    pub picked_loop: Option<u64>,
    /// The existing workspace directory.
    pub workspace: PathBuf,
    pub mapping: Mapping,
    pub parquet: ParquetInfo,
    /// Every path tried for the picked entry, in order (the last one is `workspace`).
    pub paths_tried: Vec<(Mapping, PathBuf)>,
    /// The snapshot, the history with every entry's mapped workspace, skipped files, files read.
    pub survey: Survey,
}

impl Resolution {
    fn new(survey: Survey, pick: Pick, picked: Picked) -> Resolution {
        Resolution {
            log_dir: survey.session.log_dir.clone(),
            pick,
            picked_index: picked.index,
            picked_loop: picked.loop_id,
            workspace: picked.workspace,
            mapping: picked.mapping,
            parquet: picked.parquet,
            paths_tried: picked.paths_tried,
            survey,
        }
    }

    /// The picked entry as `finish_pick` returned it.
    pub fn picked(&self) -> Picked {
        Picked {
            index: self.picked_index,
            loop_id: self.picked_loop,
            workspace: self.workspace.clone(),
            mapping: self.mapping,
            parquet: self.parquet.clone(),
            paths_tried: self.paths_tried.clone(),
        }
    }

    pub fn snapshot(&self) -> &SnapshotInfo {
        &self.survey.session.snapshot
    }

    pub fn history(&self) -> &[EntryStatus] {
        &self.survey.entries
    }

    pub fn skipped(&self) -> &[Skipped] {
        &self.survey.session.skipped
    }

    pub fn candidates_read(&self) -> usize {
        self.survey.session.candidates_read
    }
}

impl Inspection {
    pub fn into_resolution(self) -> crate::Result<Resolution> {
        let picked = self.outcome?;
        Ok(Resolution::new(self.survey, self.pick, picked))
    }
}

/// Read the run's history; each entry's workspace is mapped when something first asks where it is.
pub fn survey(req: &ResolveRequest) -> crate::Result<Survey> {
    let mut path = absolute(&req.cwd, &req.path);
    // A run rd-chain continued goes on in `<log dir>.resume-K`, whose snapshots hold the whole history.
    if path.is_dir() && path.file_name().is_some_and(|n| n != session::SESSION_DIR) {
        if let Some(newest) = crate::continuation::latest(&path) {
            log::warn!(
                "{} was continued in {}: reading the run's whole history from there",
                path.display(),
                newest.display()
            );
            path = newest;
        }
    }
    let mut session = session::load(&path, req.signing_key.as_ref(), req.reading)?;
    req.verify
        .apply(&mut session.snapshot.signature, &session.snapshot.path)?;
    let project_root = match &req.project_root {
        Some(root) => absolute(&req.cwd, root),
        None => project_root_of(&session.log_dir),
    };
    let workspace_env = req
        .workspace_path_env
        .as_ref()
        .map(|w| absolute(&req.cwd, w));
    let entries = std::mem::take(&mut session.history)
        .into_iter()
        .map(EntryStatus::new)
        .collect();
    Ok(Survey {
        session,
        project_root,
        workspace_env,
        entries,
    })
}

fn entry_label(entry: &HistoryEntry) -> String {
    match entry.loop_id {
        Some(l) => format!("history entry #{} (loop {l})", entry.index),
        None => format!("history entry #{}", entry.index),
    }
}

/// Which history entry a policy picks; the error says what the log holds and what to try.
pub fn pick_index(survey: &Survey, pick: Pick) -> crate::Result<usize> {
    let entries = &survey.entries;
    let ctx = survey.context();
    let is_factor = |s: &&EntryStatus| s.entry.kind == ExperimentKind::Factor;
    let found = match pick {
        Pick::Sota => entries.iter().rposition(|s| s.entry.is_accepted_factor()),
        // From the end: only the entries after the one found are looked up.
        Pick::Latest => entries
            .iter()
            .rposition(|s| is_factor(&s) && s.parquet_exists(&ctx)),
        Pick::Loop(n) => entries
            .iter()
            .rposition(|s| is_factor(&s) && s.entry.loop_id == Some(n)),
    };
    if let Some(index) = found {
        return Ok(index);
    }
    let counts = survey.counts();
    let what = match pick {
        Pick::Sota => "no accepted factor experiment in the history".to_string(),
        Pick::Latest => "no factor experiment with a parquet file in the history".to_string(),
        Pick::Loop(n) => format!("no factor experiment of loop {n} in the history"),
    };
    let context = format!(
        "(log {}, snapshot {}): it has {counts}",
        survey.session.log_dir.display(),
        survey.session.snapshot.path.display()
    );
    let advice = if counts.factor == 0 {
        let loop_class = match survey.session.snapshot.loop_class.as_deref() {
            Some(class) if class.contains("Model") => format!("the loop is {class}: a model run"),
            Some(class) => format!("the loop is {class}"),
            None => "the top object has no class".to_string(),
        };
        format!(
            "no factor experiment at all ({loop_class}); pass the log of an `rdagent fin_factor` (or fin_quant) run \
             that finished at least one loop"
        )
    } else {
        match pick {
            Pick::Sota => "RD-Agent's SOTA is the last factor experiment whose feedback decision is true; try \
                           --pick latest (the last factor experiment with a parquet) or --pick loop:N, or another log"
                .to_string(),
            Pick::Latest => {
                let lines: Vec<String> = entries
                    .iter()
                    .filter(is_factor)
                    .map(|status| {
                        let whereabouts = match (status.located(&ctx), &status.entry.workspace) {
                            (Some(l), _) => format!("{} does not exist", l.path.join(PARQUET_FILE).display()),
                            (None, Some(rec)) => format!("the workspace {} does not exist", rec.text),
                            (None, None) => "no workspace recorded".to_string(),
                        };
                        format!("  {}: {whereabouts}", entry_label(&status.entry))
                    })
                    .collect();
                format!(
                    "factor experiments:\n{}\nif the workspaces were moved, set WORKSPACE_PATH to the directory \
                     holding them",
                    lines.join("\n")
                )
            }
            Pick::Loop(_) => {
                let loops: Vec<String> = entries
                    .iter()
                    .filter(is_factor)
                    .filter_map(|s| s.entry.loop_id)
                    .map(|l| l.to_string())
                    .collect();
                match loops.last() {
                    None => format!(
                        "no experiment of this log has a loop id: its idx2loop_id map is missing or empty, and \
                         its loop_prev_out does not hold the experiments (the log {}); use --pick sota or \
                         --pick latest",
                        survey.session.snapshot.era
                    ),
                    Some(last) => format!(
                        "factor experiments were recorded for loops {}; try --pick loop:{last}",
                        loops.join(", ")
                    ),
                }
            }
        }
    };
    Err(Error::resolution(format!("{what} {context}; {advice}")))
}

/// Map the chosen entry's workspace and check its parquet file.
pub fn finish_pick(survey: &Survey, index: usize) -> crate::Result<Picked> {
    let status = &survey.entries[index];
    let entry = &status.entry;
    let label = entry_label(entry);
    let recorded = entry.workspace.as_ref().ok_or_else(|| {
        Error::resolution(format!(
            "{label} in {} records no workspace path (experiment_workspace.workspace_path is missing): \
             try another --pick, or pass the workspace with --sota-workspace",
            survey.session.snapshot.path.display()
        ))
    })?;
    crate::work::add(1); // a workspace lookup (tests count them per pick)
    let candidates = mapping_candidates(recorded, &survey.context());
    let Some(position) = candidates.iter().position(|(_, p)| p.is_dir()) else {
        let tried: Vec<String> = candidates
            .iter()
            .map(|(m, p)| format!("  {m}: {}", p.display()))
            .collect();
        return Err(Error::resolution(format!(
            "the workspace {} does not exist ({label}); tried:\n{}\nset WORKSPACE_PATH to the directory that \
             holds RD-Agent's workspaces now, or pass the workspace with --sota-workspace",
            recorded.text,
            tried.join("\n")
        )));
    };
    let (mapping, workspace) = candidates[position].clone();
    crate::work::add(1); // a workspace lookup (tests count them per pick)
    let parquet = check_parquet(&workspace).map_err(|(path, problem)| {
        Error::resolution(format!(
            "{} {problem} (workspace of {label}, found as {mapping}); that experiment did not leave a usable \
             factor table: try --pick latest or --pick loop:N, or rerun the factor loop",
            path.display()
        ))
    })?;
    Ok(Picked {
        index,
        loop_id: entry.loop_id,
        workspace,
        mapping,
        parquet,
        paths_tried: candidates[..=position].to_vec(),
    })
}

/// Read the history and apply the pick policy; fails only when no snapshot can be read.
pub fn inspect(req: &ResolveRequest) -> crate::Result<Inspection> {
    Ok(apply_pick(survey(req)?, req.pick))
}

/// Apply a pick policy to a survey: choose the entry, map its workspace and check its parquet file.
pub fn apply_pick(survey: Survey, pick: Pick) -> Inspection {
    let outcome = pick_index(&survey, pick).and_then(|index| finish_pick(&survey, index));
    Inspection {
        survey,
        pick,
        outcome,
    }
}

/// The whole pipeline: the SOTA (or otherwise picked) factor workspace of a run, checked.
pub fn resolve(req: &ResolveRequest) -> crate::Result<Resolution> {
    inspect(req)?.into_resolution()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{HistoryEntry, SnapshotInfo};

    fn rec(flavour: PathFlavour, text: &str) -> RecordedPath {
        RecordedPath {
            flavour,
            text: text.to_string(),
            stored_as: "test".to_string(),
        }
    }

    fn names(c: &[(Mapping, PathBuf)]) -> Vec<(&'static str, String)> {
        c.iter()
            .map(|(m, p)| (m.as_str(), p.to_string_lossy().into_owned()))
            .collect()
    }

    #[test]
    fn pick_parses_and_prints_every_form() {
        assert_eq!("sota".parse::<Pick>(), Ok(Pick::Sota));
        assert_eq!("LATEST".parse::<Pick>(), Ok(Pick::Latest));
        assert_eq!("loop:12".parse::<Pick>(), Ok(Pick::Loop(12)));
        assert_eq!(" loop: 3 ".parse::<Pick>(), Ok(Pick::Loop(3)));
        for bad in ["", "loop", "loop:", "loop:-1", "loop:x", "best", "3"] {
            let err = bad.parse::<Pick>().unwrap_err().to_string();
            assert!(
                err.contains("sota") && err.contains("latest") && err.contains("loop:N"),
                "{err}"
            );
        }
        for p in [Pick::Sota, Pick::Latest, Pick::Loop(7)] {
            assert_eq!(p.to_string().parse::<Pick>(), Ok(p));
        }
        assert_eq!(Pick::Loop(7).to_string(), "loop:7");
    }

    #[test]
    fn absolute_is_lexical() {
        let cwd = Path::new("/work/proj");
        assert_eq!(
            absolute(cwd, Path::new("log/run")),
            PathBuf::from("/work/proj/log/run")
        );
        assert_eq!(
            absolute(cwd, Path::new("./log/../log/run/")),
            PathBuf::from("/work/proj/log/run")
        );
        assert_eq!(
            absolute(cwd, Path::new("/a/./b/../c")),
            PathBuf::from("/a/c")
        );
        assert_eq!(absolute(cwd, Path::new("/../x")), PathBuf::from("/x"));
        assert_eq!(
            absolute(Path::new("/home/u/proj"), Path::new("./log")),
            PathBuf::from("/home/u/proj/log")
        );
        assert_eq!(absolute(cwd, Path::new("/x/y")), PathBuf::from("/x/y"));
        assert_eq!(
            absolute(Path::new("rel"), Path::new("../../x")),
            PathBuf::from("../x")
        );
    }

    #[test]
    fn project_root_is_the_parent_of_log_or_of_the_log_dir() {
        assert_eq!(
            project_root_of(Path::new("/p/log/2026-01-14_16-14-52-886218")),
            PathBuf::from("/p")
        );
        assert_eq!(
            project_root_of(Path::new("/data/runs/r1")),
            PathBuf::from("/data/runs")
        );
        assert_eq!(project_root_of(Path::new("/log/r1")), PathBuf::from("/"));
        assert_eq!(project_root_of(Path::new("/")), PathBuf::from("/"));
    }

    #[test]
    fn posix_host_mapping_order() {
        let ctx = MappingContext {
            project_root: Path::new("/p"),
            workspace_env: Some(Path::new("/env/ws")),
            host: PathFlavour::Posix,
        };
        let c = mapping_candidates(&rec(PathFlavour::Posix, "/old/ws/abc"), &ctx);
        assert_eq!(
            names(&c),
            vec![
                ("recorded", "/old/ws/abc".to_string()),
                ("env-workspace", "/env/ws/abc".to_string()),
                (
                    "project-workspace",
                    "/p/git_ignore_folder/RD-Agent_workspace/abc".to_string()
                ),
            ]
        );
        // Relative: against the project root; the project-workspace duplicate is dropped.
        let c = mapping_candidates(
            &rec(
                PathFlavour::Posix,
                "git_ignore_folder/RD-Agent_workspace/abc",
            ),
            &ctx,
        );
        assert_eq!(
            names(&c),
            vec![
                (
                    "relative",
                    "/p/git_ignore_folder/RD-Agent_workspace/abc".to_string()
                ),
                ("env-workspace", "/env/ws/abc".to_string()),
            ]
        );
        // Windows path read on Linux: WSL mount first, then by uuid.
        let c = mapping_candidates(
            &rec(PathFlavour::Windows, "F:\\Dev\\RD-Agent-main\\ws\\abc"),
            &ctx,
        );
        assert_eq!(
            names(&c),
            vec![
                (
                    "windows-to-wsl",
                    "/mnt/f/Dev/RD-Agent-main/ws/abc".to_string()
                ),
                ("env-workspace", "/env/ws/abc".to_string()),
                (
                    "project-workspace",
                    "/p/git_ignore_folder/RD-Agent_workspace/abc".to_string()
                ),
            ]
        );
        // A relative Windows path joins with / on Linux.
        let c = mapping_candidates(&rec(PathFlavour::Windows, "ws\\abc"), &ctx);
        assert_eq!(names(&c)[0], ("relative", "/p/ws/abc".to_string()));
        // A UNC path has no WSL spelling; a path without a last segment has no uuid fallback.
        let c = mapping_candidates(&rec(PathFlavour::Windows, "\\\\srv\\share\\abc"), &ctx);
        assert_eq!(names(&c)[0].0, "env-workspace");
        let c = mapping_candidates(&rec(PathFlavour::Posix, "/"), &ctx);
        assert_eq!(names(&c), vec![("recorded", "/".to_string())]);
    }

    #[test]
    fn windows_host_mapping_of_wsl_paths() {
        let ctx = MappingContext {
            project_root: Path::new("C:\\p"),
            workspace_env: None,
            host: PathFlavour::Windows,
        };
        let c = mapping_candidates(&rec(PathFlavour::Posix, "/mnt/f/Dev/ws/abc"), &ctx);
        let n = names(&c);
        assert_eq!(n[0], ("recorded", "/mnt/f/Dev/ws/abc".to_string()));
        assert_eq!(n[1], ("wsl-to-windows", "F:\\Dev\\ws\\abc".to_string()));
        assert_eq!(n[2].0, "project-workspace");
        let c = mapping_candidates(&rec(PathFlavour::Posix, "/mnt/data/ws/abc"), &ctx);
        assert!(
            !names(&c).iter().any(|(m, _)| *m == "wsl-to-windows"),
            "/mnt/data is no drive"
        );
        let c = mapping_candidates(&rec(PathFlavour::Windows, "F:\\ws\\abc"), &ctx);
        assert_eq!(names(&c)[0], ("recorded", "F:\\ws\\abc".to_string()));
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("rd-chain-resolve-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn locate_takes_the_first_existing_directory() {
        let root = temp_dir("locate");
        let ws = root.join(PROJECT_WORKSPACE_DIR).join("abc");
        fs::create_dir_all(&ws).unwrap();
        let ctx = MappingContext {
            project_root: &root,
            workspace_env: None,
            host: PathFlavour::Posix,
        };
        let found = locate_workspace(&rec(PathFlavour::Posix, "/nowhere/abc"), &ctx).unwrap();
        assert_eq!(
            (found.path, found.mapping),
            (ws.clone(), Mapping::ProjectWorkspace)
        );
        let found =
            locate_workspace(&rec(PathFlavour::Posix, &ws.to_string_lossy()), &ctx).unwrap();
        assert_eq!(found.mapping, Mapping::Recorded);
        let tried = locate_workspace(&rec(PathFlavour::Posix, "/nowhere/xyz"), &ctx).unwrap_err();
        assert_eq!(tried.len(), 2);
        // A file with the uuid's name is not a workspace.
        fs::write(root.join(PROJECT_WORKSPACE_DIR).join("file"), b"").unwrap();
        assert!(locate_workspace(&rec(PathFlavour::Posix, "/nowhere/file"), &ctx).is_err());
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn parquet_checks_name_the_problem() {
        let root = temp_dir("parquet");
        let ws = |name: &str| {
            let d = root.join(name);
            fs::create_dir_all(&d).unwrap();
            d
        };
        let ok = ws("ok");
        fs::write(
            ok.join(PARQUET_FILE),
            b"PAR1\x00\x00\x00\x00\x04\x00\x00\x00PAR1",
        )
        .unwrap();
        assert_eq!(
            check_parquet(&ok),
            Ok(ParquetInfo {
                path: ok.join(PARQUET_FILE),
                bytes: 16
            })
        );
        let minimal = ws("minimal");
        fs::write(minimal.join(PARQUET_FILE), b"PAR1\x00\x00\x00\x00PAR1").unwrap();
        assert!(check_parquet(&minimal).is_ok());

        let cases: Vec<(&str, Option<&[u8]>, ParquetProblem)> = vec![
            ("missing", None, ParquetProblem::Missing),
            ("short", Some(b"PAR1PAR1"), ParquetProblem::TooSmall(8)),
            ("empty", Some(b""), ParquetProblem::TooSmall(0)),
            (
                "csv",
                Some(b"datetime,instrument,f\n2020,SH600000,1\n"),
                ParquetProblem::BadMagicStart,
            ),
            (
                "cut",
                Some(b"PAR1\x00\x00\x00\x00\x00\x00\x00\x00\x00"),
                ParquetProblem::BadMagicEnd,
            ),
        ];
        for (name, content, problem) in cases {
            let dir = ws(name);
            if let Some(content) = content {
                fs::write(dir.join(PARQUET_FILE), content).unwrap();
            }
            assert_eq!(
                check_parquet(&dir),
                Err((dir.join(PARQUET_FILE), problem)),
                "{name}"
            );
        }
        let as_dir = ws("dir");
        fs::create_dir_all(as_dir.join(PARQUET_FILE)).unwrap();
        assert_eq!(
            check_parquet(&as_dir).unwrap_err().1,
            ParquetProblem::Directory
        );
        assert!(ParquetProblem::BadMagicStart
            .to_string()
            .contains("bad magic at start"));
        assert!(ParquetProblem::BadMagicEnd
            .to_string()
            .contains("bad magic at end"));
        assert!(ParquetProblem::TooSmall(8).to_string().contains("8 bytes"));

        // check_workspace: existence, kind, then the parquet.
        assert!(check_workspace(&ok).is_ok());
        let e = check_workspace(&root.join("nope")).unwrap_err();
        assert_eq!(e.exit_code(), crate::exit::RESOLUTION);
        assert!(
            e.to_string().contains("does not exist") && e.to_string().contains("nope"),
            "{e}"
        );
        let e = check_workspace(&ok.join(PARQUET_FILE)).unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e}");
        let e = check_workspace(&root.join("csv")).unwrap_err();
        assert_eq!(e.exit_code(), crate::exit::RESOLUTION);
        assert!(
            e.to_string().contains("csv/combined_factors_df.parquet")
                && e.to_string().contains("bad magic"),
            "{e}"
        );
        fs::remove_dir_all(&root).unwrap();
    }

    fn entry(
        index: usize,
        loop_id: Option<u64>,
        kind: ExperimentKind,
        decision: Option<bool>,
        ws: Option<&str>,
    ) -> HistoryEntry {
        HistoryEntry {
            index,
            loop_id,
            loop_source: loop_id.map(|_| crate::session::LoopSource::Recorded),
            note: None,
            class: Some(format!("m.{kind:?}Experiment")),
            kind,
            decision,
            workspace: ws.map(RecordedPath::from_str_value),
            metrics: None,
        }
    }

    fn survey_of(root: &Path, entries: Vec<(HistoryEntry, bool)>) -> Survey {
        let session = Session {
            log_dir: root.join("log").join("run"),
            session_dir: None,
            loop_dirs: entries.len(),
            snapshot_files: crate::session::SnapshotCount::known(1),
            snapshot: SnapshotInfo {
                path: root.join("snap"),
                loop_id: None,
                step: None,
                signed: false,
                signature: crate::session::Signature::Unsigned,
                protocol: 4,
                bytes: 1,
                loop_class: Some("rdagent.app.qlib_rd_loop.factor.FactorRDLoop".to_string()),
                era: "looks like RD-Agent 1.0".to_string(),
            },
            history: Vec::new(),
            skipped: Vec::new(),
            candidates_read: 1,
        };
        let mut survey = Survey {
            session,
            project_root: root.to_path_buf(),
            workspace_env: None,
            entries: Vec::new(),
        };
        survey.entries = entries
            .into_iter()
            .map(|(entry, parquet)| {
                let located = entry.workspace.as_ref().map(|w| Located {
                    path: PathBuf::from(&w.text),
                    mapping: Mapping::Recorded,
                });
                EntryStatus::known(entry, located, parquet)
            })
            .collect();
        survey
    }

    #[test]
    fn policies_pick_the_right_entry() {
        use ExperimentKind::*;
        let root = Path::new("/p");
        let s = survey_of(
            root,
            vec![
                (entry(0, Some(0), Factor, Some(true), Some("/w/0")), true),
                (entry(1, Some(1), Factor, Some(false), Some("/w/1")), true),
                (entry(2, Some(2), Factor, Some(true), Some("/w/2")), false),
                (entry(3, Some(3), Model, Some(true), Some("/w/3")), true),
                (entry(4, Some(5), Factor, Some(false), None), false),
            ],
        );
        assert_eq!(
            pick_index(&s, Pick::Sota).unwrap(),
            2,
            "last accepted factor, even a later model one"
        );
        assert_eq!(
            pick_index(&s, Pick::Latest).unwrap(),
            1,
            "last factor with a parquet"
        );
        assert_eq!(pick_index(&s, Pick::Loop(1)).unwrap(), 1);
        let e = pick_index(&s, Pick::Loop(3)).unwrap_err();
        assert_eq!(e.exit_code(), 3);
        assert!(
            e.to_string().contains("loops 0, 1, 2, 5") && e.to_string().contains("loop:5"),
            "{e}"
        );
        assert_eq!(
            s.counts(),
            HistoryCounts {
                entries: 5,
                factor: 4,
                accepted_factor: 2,
                factor_with_parquet: 2,
                model: 1,
                other: 0
            }
        );
    }

    #[test]
    fn policy_errors_say_what_the_log_holds_and_what_to_try() {
        use ExperimentKind::*;
        let root = Path::new("/p");
        let none_accepted = survey_of(
            root,
            vec![
                (entry(0, Some(0), Factor, Some(false), Some("/w/0")), false),
                (entry(1, Some(1), Factor, None, Some("/w/1")), false),
            ],
        );
        let e = pick_index(&none_accepted, Pick::Sota)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no accepted factor experiment")
                && e.contains("2 entries")
                && e.contains("0 accepted"),
            "{e}"
        );
        assert!(e.contains("--pick latest"), "{e}");
        let e = pick_index(&none_accepted, Pick::Latest)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("#0 (loop 0)")
                && e.contains("/w/1/combined_factors_df.parquet does not exist"),
            "{e}"
        );

        let mut models = survey_of(
            root,
            vec![(entry(0, Some(0), Model, Some(true), Some("/w/0")), true)],
        );
        models.session.snapshot.loop_class =
            Some("rdagent.app.qlib_rd_loop.model.ModelRDLoop".to_string());
        for pick in [Pick::Sota, Pick::Latest, Pick::Loop(0)] {
            let e = pick_index(&models, pick).unwrap_err().to_string();
            assert!(
                e.contains("no factor experiment")
                    && e.contains("ModelRDLoop")
                    && e.contains("1 model"),
                "{e}"
            );
            assert!(e.contains("fin_factor"), "{e}");
        }
        let empty = survey_of(root, vec![]);
        let e = pick_index(&empty, Pick::Sota).unwrap_err().to_string();
        assert!(e.contains("0 entries"), "{e}");

        let no_ids = survey_of(
            root,
            vec![(entry(0, None, Factor, Some(true), Some("/w/0")), true)],
        );
        let e = pick_index(&no_ids, Pick::Loop(0)).unwrap_err().to_string();
        assert!(e.contains("idx2loop_id"), "{e}");
    }

    #[test]
    fn finishing_a_pick_maps_checks_and_names_every_path_tried() {
        use ExperimentKind::*;
        let root = temp_dir("finish");
        let moved = root.join(PROJECT_WORKSPACE_DIR).join("abc");
        fs::create_dir_all(&moved).unwrap();
        fs::write(moved.join(PARQUET_FILE), b"PAR1\x00\x00\x00\x00PAR1").unwrap();
        let s = survey_of(
            &root,
            vec![
                (
                    entry(0, Some(0), Factor, Some(true), Some("/gone/abc")),
                    true,
                ),
                (
                    entry(1, Some(1), Factor, Some(true), Some("/gone/xyz")),
                    false,
                ),
                (entry(2, Some(2), Factor, Some(true), None), false),
            ],
        );
        let p = finish_pick(&s, 0).unwrap();
        assert_eq!(
            (p.workspace.clone(), p.mapping),
            (moved.clone(), Mapping::ProjectWorkspace)
        );
        assert_eq!(p.paths_tried.len(), 2);
        assert_eq!(p.parquet.bytes, 12);
        let e = finish_pick(&s, 1).unwrap_err().to_string();
        assert!(
            e.contains("recorded: /gone/xyz")
                && e.contains("project-workspace: ")
                && e.contains("WORKSPACE_PATH"),
            "{e}"
        );
        let e = finish_pick(&s, 2).unwrap_err().to_string();
        assert!(e.contains("records no workspace path"), "{e}");
        fs::write(moved.join(PARQUET_FILE), b"a,b\n1,2\n3,4\n5,6\n").unwrap();
        let e = finish_pick(&s, 0).unwrap_err().to_string();
        assert!(
            e.contains(&moved.join(PARQUET_FILE).display().to_string())
                && e.contains("bad magic at start"),
            "{e}"
        );
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_pick_looks_up_only_the_workspaces_it_needs() {
        use ExperimentKind::*;
        let root = temp_dir("lazy");
        // Factor experiments with an existing workspace each (every fifth entry a model one); only one
        // workspace near the end (`tail` entries from it) holds a parquet file, and the SOTA's near the start.
        let lazy_survey = |n: usize, tail: usize| {
            let with_parquet = n - tail;
            let entries = (0..n)
                .map(|i| {
                    let ws = root.join(format!("ws-{n}")).join(i.to_string());
                    fs::create_dir_all(&ws).unwrap();
                    if i == 3 || i == with_parquet {
                        fs::write(ws.join(PARQUET_FILE), b"PAR1\x00\x00\x00\x00PAR1").unwrap();
                    }
                    let kind = if i % 5 == 4 { Model } else { Factor };
                    let ws = ws.to_str().unwrap().to_string();
                    (
                        entry(i, Some(i as u64), kind, Some(i == 3), Some(&ws)),
                        false,
                    )
                })
                .collect();
            let mut s = survey_of(&root, entries);
            s.entries = s
                .entries
                .into_iter()
                .map(|status| EntryStatus::new(status.entry))
                .collect();
            (s, with_parquet)
        };
        for n in [50, 500] {
            let (s, with_parquet) = lazy_survey(n, 12);
            crate::work::take();
            let sota = apply_pick(s, Pick::Sota);
            assert_eq!(sota.outcome.as_ref().map(|p| p.index).ok(), Some(3));
            assert_eq!(
                crate::work::take(),
                2,
                "sota maps the picked workspace and checks its parquet, of {n} entries"
            );

            let latest = apply_pick(sota.survey, Pick::Latest);
            assert_eq!(
                latest.outcome.as_ref().map(|p| p.index).ok(),
                Some(with_parquet)
            );
            let factors_from_the_end = (with_parquet..n).filter(|i| i % 5 != 4).count();
            assert_eq!(
                crate::work::take(),
                2 * factors_from_the_end as u64 + 2,
                "latest looks up each factor workspace from the end back to the parquet, then the picked one"
            );

            // What prints the counts looks up the rest, once.
            let counts = latest.survey.counts();
            assert_eq!((counts.factor, counts.factor_with_parquet), (n - n / 5, 2));
            let factors_before = (0..with_parquet).filter(|i| i % 5 != 4).count();
            assert_eq!(crate::work::take(), 2 * factors_before as u64);
            latest.survey.counts();
            assert_eq!(crate::work::take(), 0, "looked up once, then remembered");
        }
        fs::remove_dir_all(&root).unwrap();
    }
}
