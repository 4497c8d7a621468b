//! Workspace paths as RD-Agent recorded them: a `pathlib` object (any flavour, `pathlib` or `pathlib._local`)
//! or a plain str, turned into the text Python's `str(path)` would print.
//!
//! Pure text work: nothing here touches the file system or guesses where a path lives now (that is
//! `resolve`'s mapping). Segments are joined like `os.path.join` of the recorded flavour.

use crate::pickle::{Graph, Value};
use crate::work;

use super::metrics::{CopyBudget, Exhausted};

/// The path syntax a recorded path uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathFlavour {
    /// `/home/u/ws`: separator `/`.
    Posix,
    /// `F:\Dev\ws`: drive letters, separators `\` and `/`.
    Windows,
}

impl PathFlavour {
    /// The flavour of the machine rd-chain runs on.
    pub fn host() -> PathFlavour {
        if cfg!(windows) {
            PathFlavour::Windows
        } else {
            PathFlavour::Posix
        }
    }
}

/// A workspace path from a snapshot, normalised like `pathlib` does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedPath {
    pub flavour: PathFlavour,
    /// What `str(path)` prints: `/home/u/ws/003d...` or `F:\Dev\ws\003d...`.
    pub text: String,
    /// How it was stored: `pathlib.PosixPath`, `pathlib._local.WindowsPath`, `str`, ...
    pub stored_as: String,
}

impl RecordedPath {
    /// Build from a str value, guessing the flavour from its look (drive letter or backslashes: Windows).
    pub fn from_str_value(text: &str) -> RecordedPath {
        let flavour = guess_flavour(&[text]);
        RecordedPath {
            flavour,
            text: join(flavour, &[text]),
            stored_as: "str".to_string(),
        }
    }

    /// The drive letter, the root, and the normal segments after them.
    pub fn split(&self) -> SplitPath<'_> {
        match self.flavour {
            PathFlavour::Posix => {
                let absolute = self.text.starts_with('/');
                SplitPath {
                    drive: "",
                    absolute,
                    segments: self
                        .text
                        .split('/')
                        .filter(|s| !s.is_empty() && *s != ".")
                        .collect(),
                }
            }
            PathFlavour::Windows => {
                let (drive, root, rest) = split_windows_root(&self.text);
                SplitPath {
                    drive,
                    absolute: !root.is_empty(),
                    segments: rest
                        .split(['\\', '/'])
                        .filter(|s| !s.is_empty() && *s != ".")
                        .collect(),
                }
            }
        }
    }

    /// True when the path names the same place from any working directory (Windows: drive and root).
    pub fn is_absolute(&self) -> bool {
        let split = self.split();
        match self.flavour {
            PathFlavour::Posix => split.absolute,
            PathFlavour::Windows => split.absolute && !split.drive.is_empty(),
        }
    }

    /// True when the path is relative to the directory RD-Agent ran in (no root, no drive).
    pub fn is_relative(&self) -> bool {
        let split = self.split();
        !split.absolute && split.drive.is_empty()
    }

    /// The last segment: the workspace's uuid directory name.
    pub fn last_segment(&self) -> Option<&str> {
        self.split().segments.last().copied().filter(|s| *s != "..")
    }
}

/// A recorded path taken apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitPath<'a> {
    /// `F:` or `\\server\share` (Windows only), else empty.
    pub drive: &'a str,
    /// Starts at a root (`/` or `\`).
    pub absolute: bool,
    /// The names after drive and root, without empty and `.` segments.
    pub segments: Vec<&'a str>,
}

/// The most segments and bytes a recorded path may have; more is no path any OS takes (PATH_MAX is 4 KiB on
/// Linux, 32 Ki UTF-16 units on Windows), and is read as no path rather than joined.
pub const MAX_PATH_SEGMENTS: usize = 4096;
pub const MAX_PATH_BYTES: usize = 64 * 1024;

/// The recorded workspace path a snapshot value holds, if it is a `pathlib` path or a str.
pub fn recorded_path(graph: &Graph, value: &Value) -> Option<RecordedPath> {
    recorded_path_within(graph, value, &mut CopyBudget::unlimited())
        .ok()
        .flatten()
}

/// `recorded_path`, charging the segments it looks at and the text it copies to `budget` first.
pub fn recorded_path_within(
    graph: &Graph,
    value: &Value,
    budget: &mut CopyBudget,
) -> Result<Option<RecordedPath>, Exhausted> {
    if let Some(s) = value.as_str() {
        if s.len() > MAX_PATH_BYTES {
            return Ok(None);
        }
        budget.charge(s.len())?;
        return Ok(Some(RecordedPath::from_str_value(s)));
    }
    let mut args: &[Value] = match graph.object(value) {
        Some(object) => object.args,
        None => return Ok(None),
    };
    if let [only @ Value::Node(_)] = args {
        args = graph.items(only).unwrap_or(&[]);
    }
    budget.charge(args.len().min(MAX_PATH_SEGMENTS + 1))?;
    Ok(pathlib_path(graph, value))
}

fn pathlib_path(graph: &Graph, value: &Value) -> Option<RecordedPath> {
    let (module, name) = graph.class_of(value)?;
    let object = graph.object(value)?;
    if module != "pathlib" && !module.starts_with("pathlib.") {
        return None;
    }
    let flavour_from_class = match name {
        "PosixPath" | "PurePosixPath" => Some(PathFlavour::Posix),
        "WindowsPath" | "PureWindowsPath" => Some(PathFlavour::Windows),
        "Path" | "PurePath" => None,
        _ => return None,
    };
    // REDUCE(cls, parts) keeps the parts in `args`; some writers wrap them in one tuple.
    let mut args: &[Value] = object.args;
    if let [only @ Value::Node(_)] = args {
        args = graph.items(only)?;
    }
    if args.len() > MAX_PATH_SEGMENTS {
        return None;
    }
    let mut segments = Vec::with_capacity(args.len());
    let mut bytes = 0usize;
    for arg in args {
        work::add(1);
        let segment = arg.as_str()?;
        bytes = bytes.saturating_add(segment.len());
        if bytes > MAX_PATH_BYTES {
            return None;
        }
        segments.push(segment);
    }
    let flavour = flavour_from_class.unwrap_or_else(|| guess_flavour(&segments));
    Some(RecordedPath {
        flavour,
        text: {
            work::add(bytes);
            join(flavour, &segments)
        },
        stored_as: [module, ".", name].concat(),
    })
}

/// Windows when the first segment has a drive letter or UNC prefix, or a segment uses `\` and none starts
/// with `/`; Posix otherwise.
pub fn guess_flavour(segments: &[&str]) -> PathFlavour {
    let first = segments.first().copied().unwrap_or("");
    let bytes = first.as_bytes();
    let has_drive = bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':';
    if has_drive || first.starts_with("\\\\") {
        return PathFlavour::Windows;
    }
    let backslash = segments.iter().any(|s| s.contains('\\'));
    let slash_rooted = segments.iter().any(|s| s.starts_with('/'));
    if backslash && !slash_rooted {
        PathFlavour::Windows
    } else {
        PathFlavour::Posix
    }
}

/// Join segments like `os.path.join` of `flavour`, then normalise like `pathlib` (`str(PurePath(...))`).
pub fn join(flavour: PathFlavour, segments: &[&str]) -> String {
    match flavour {
        PathFlavour::Posix => normalise_posix(join_posix(segments)),
        PathFlavour::Windows => normalise_windows(&join_windows(segments)),
    }
}

/// `posixpath.join`: a segment starting with `/` restarts the path.
fn join_posix(segments: &[&str]) -> String {
    let mut path = String::with_capacity(segments.iter().map(|s| s.len() + 1).sum());
    for segment in segments {
        if segment.starts_with('/') {
            path.clear();
            path.push_str(segment);
        } else if path.is_empty() || path.ends_with('/') {
            path.push_str(segment);
        } else {
            path.push('/');
            path.push_str(segment);
        }
    }
    path
}

/// `PurePosixPath` normalisation: collapse separators, drop `.` segments, keep exactly `//` as a root.
fn normalise_posix(path: String) -> String {
    if is_normal_posix(&path) {
        return path;
    }
    normalised_posix(&path)
}

fn normalised_posix(path: &str) -> String {
    let leading = path.bytes().take_while(|b| *b == b'/').count();
    let root = match leading {
        0 => "",
        2 => "//",
        _ => "/",
    };
    let parts: Vec<&str> = path
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    let joined = format!("{root}{}", parts.join("/"));
    if joined.is_empty() {
        ".".to_string()
    } else {
        joined
    }
}

/// Whether `normalise_posix` would give `path` back as it is (the common case, checked without allocating): a
/// root of at most two separators, then segments that are neither empty nor `.`; or `.` alone.
fn is_normal_posix(path: &str) -> bool {
    if path == "." {
        return true;
    }
    let leading = path.bytes().take_while(|b| *b == b'/').count();
    let rest = &path[leading..];
    if leading > 2 || (rest.is_empty() && leading == 0) {
        return false;
    }
    rest.is_empty()
        || rest
            .as_bytes()
            .split(|b| *b == b'/')
            .all(|s| !s.is_empty() && s != b".")
}

/// Split a Windows path into (drive, root, rest): `F:\a` -> (`F:`, `\`, `a`); `\\srv\share\a` -> (`\\srv\share`,
/// `\`, `a`); `\a` -> (``, `\`, `a`); `F:a` -> (`F:`, ``, `a`).
fn split_windows_root(path: &str) -> (&str, &str, &str) {
    let is_sep = |c: char| c == '\\' || c == '/';
    let bytes = path.as_bytes();
    let drive_len = if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' {
        2
    } else if path.len() >= 2 && path.chars().take(2).all(is_sep) {
        // UNC: \\server\share
        let after = &path[2..];
        match after.find(is_sep) {
            Some(server_end) => {
                let share_start = 2 + server_end + 1;
                match path[share_start..].find(is_sep) {
                    Some(share_end) => share_start + share_end,
                    None => path.len(),
                }
            }
            None => path.len(),
        }
    } else {
        0
    };
    let (drive, rest) = path.split_at(drive_len);
    let root_len = rest
        .chars()
        .next()
        .filter(|c| is_sep(*c))
        .map_or(0, char::len_utf8);
    let (root, rest) = rest.split_at(root_len);
    (drive, root, rest)
}

/// `ntpath.join`: a rooted segment restarts the path (keeping the drive unless it brings one), a segment on
/// another drive restarts it entirely.
fn join_windows(segments: &[&str]) -> String {
    let mut drive = String::new();
    let mut root = String::new();
    let mut rest = String::new();
    for (i, segment) in segments.iter().enumerate() {
        let (s_drive, s_root, s_rest) = split_windows_root(segment);
        if i == 0 {
            drive = s_drive.to_string();
            root = s_root.to_string();
            rest = s_rest.to_string();
            continue;
        }
        if !s_root.is_empty() {
            if !s_drive.is_empty() || drive.is_empty() {
                drive = s_drive.to_string();
            }
            root = s_root.to_string();
            rest = s_rest.to_string();
            continue;
        }
        if !s_drive.is_empty() && s_drive != drive {
            if !s_drive.eq_ignore_ascii_case(&drive) {
                drive = s_drive.to_string();
                root = String::new();
                rest = s_rest.to_string();
                continue;
            }
            drive = s_drive.to_string();
        }
        if !rest.is_empty() && !rest.ends_with(['\\', '/']) {
            rest.push('\\');
        }
        rest.push_str(s_rest);
    }
    if !rest.is_empty() && root.is_empty() && drive.len() > 2 {
        // A UNC drive followed by a relative part still needs a separator.
        root = "\\".to_string();
    }
    format!("{drive}{root}{rest}")
}

/// `PureWindowsPath` normalisation: `\` separators, no empty or `.` segments.
fn normalise_windows(path: &str) -> String {
    let (drive, root, rest) = split_windows_root(path);
    let drive = drive.replace('/', "\\");
    let root = if root.is_empty() { "" } else { "\\" };
    let parts: Vec<&str> = rest
        .split(['\\', '/'])
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    let joined = format!("{drive}{root}{}", parts.join("\\"));
    if joined.is_empty() {
        ".".to_string()
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pickle::{BuildKind, ObjectParts};

    fn posix(parts: &[&str]) -> String {
        join(PathFlavour::Posix, parts)
    }

    fn windows(parts: &[&str]) -> String {
        join(PathFlavour::Windows, parts)
    }

    #[test]
    fn a_posix_path_is_taken_as_it_is_exactly_when_normalising_would_not_change_it() {
        let segments = ["", ".", "..", "a", "bc", "d.e"];
        let mut checked = 0;
        for leading in 0..4 {
            for n in 0..4u32 {
                for pick in 0..segments.len().pow(n) {
                    let parts: Vec<&str> = (0..n)
                        .map(|i| segments[pick / segments.len().pow(i) % segments.len()])
                        .collect();
                    let path = format!("{}{}", "/".repeat(leading), parts.join("/"));
                    assert_eq!(
                        is_normal_posix(&path),
                        normalised_posix(&path) == path,
                        "{path:?}"
                    );
                    assert_eq!(
                        normalise_posix(path.clone()),
                        normalised_posix(&path),
                        "{path:?}"
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 1000, "{checked}");
    }

    #[test]
    fn posix_parts_and_raw_segments_give_the_same_text() {
        let uuid = "003d196d545d4039a12575789864e1ea";
        let from_parts = posix(&[
            "/",
            "home",
            "u",
            "git_ignore_folder",
            "RD-Agent_workspace",
            uuid,
        ]);
        let from_raw = posix(&["/home/u/git_ignore_folder/RD-Agent_workspace", uuid]);
        let joined = posix(&[
            "/home/u/git_ignore_folder/RD-Agent_workspace/003d196d545d4039a12575789864e1ea",
        ]);
        assert_eq!(
            from_parts,
            format!("/home/u/git_ignore_folder/RD-Agent_workspace/{uuid}")
        );
        assert_eq!(from_raw, from_parts);
        assert_eq!(joined, from_parts);
    }

    #[test]
    fn posix_absolute_segment_restarts_and_text_is_normalised() {
        assert_eq!(posix(&["/a/b", "/c", "d"]), "/c/d");
        assert_eq!(posix(&["a", "b/", "./c//"]), "a/b/c");
        assert_eq!(posix(&["/a/", "b"]), "/a/b");
        assert_eq!(posix(&[]), ".");
        assert_eq!(posix(&["//srv", "x"]), "//srv/x");
        assert_eq!(posix(&["///a"]), "/a");
        assert_eq!(posix(&["a", "..", "b"]), "a/../b");
    }

    #[test]
    fn windows_parts_raw_segments_and_drive_restart() {
        let uuid = "003d196d545d4039a12575789864e1ea";
        let expected =
            format!("F:\\Dev\\RD-Agent-main\\git_ignore_folder\\RD-Agent_workspace\\{uuid}");
        assert_eq!(
            windows(&[
                "F:\\",
                "Dev",
                "RD-Agent-main",
                "git_ignore_folder",
                "RD-Agent_workspace",
                uuid
            ]),
            expected
        );
        assert_eq!(
            windows(&[
                "F:\\Dev\\RD-Agent-main\\git_ignore_folder\\RD-Agent_workspace",
                uuid
            ]),
            expected
        );
        assert_eq!(
            windows(&[
                "F:/Dev/RD-Agent-main/git_ignore_folder/RD-Agent_workspace",
                uuid
            ]),
            expected
        );
        // Another drive restarts; a rooted segment keeps the drive.
        assert_eq!(windows(&["F:\\Dev", "C:\\x", "y"]), "C:\\x\\y");
        assert_eq!(windows(&["F:\\Dev", "\\x"]), "F:\\x");
        assert_eq!(windows(&["F:\\Dev", "f:y"]), "f:\\Dev\\y");
        assert_eq!(windows(&["F:\\Dev", "D:y"]), "D:y");
        assert_eq!(windows(&["a", "b"]), "a\\b");
        assert_eq!(windows(&["\\\\srv\\share", "x"]), "\\\\srv\\share\\x");
    }

    #[test]
    fn split_and_predicates() {
        let w = RecordedPath {
            flavour: PathFlavour::Windows,
            text: "F:\\Dev\\ws\\abc".to_string(),
            stored_as: "pathlib.WindowsPath".to_string(),
        };
        assert_eq!(
            w.split(),
            SplitPath {
                drive: "F:",
                absolute: true,
                segments: vec!["Dev", "ws", "abc"]
            }
        );
        assert!(w.is_absolute());
        assert!(!w.is_relative());
        assert_eq!(w.last_segment(), Some("abc"));
        let rel = RecordedPath::from_str_value("git_ignore_folder/RD-Agent_workspace/abc");
        assert_eq!(rel.flavour, PathFlavour::Posix);
        assert!(rel.is_relative());
        assert!(!rel.is_absolute());
        assert_eq!(rel.last_segment(), Some("abc"));
        let winstr = RecordedPath::from_str_value("D:/runs/ws/abc");
        assert_eq!(winstr.flavour, PathFlavour::Windows);
        assert_eq!(winstr.text, "D:\\runs\\ws\\abc");
        let dot = RecordedPath::from_str_value(".");
        assert_eq!(dot.last_segment(), None);
        assert_eq!(RecordedPath::from_str_value("a/..").last_segment(), None);
    }

    #[test]
    fn guesses_flavour_from_the_look() {
        assert_eq!(guess_flavour(&["C:\\x"]), PathFlavour::Windows);
        assert_eq!(guess_flavour(&["\\\\srv\\s"]), PathFlavour::Windows);
        assert_eq!(guess_flavour(&["ws\\abc"]), PathFlavour::Windows);
        assert_eq!(guess_flavour(&["/home/a\\b"]), PathFlavour::Posix);
        assert_eq!(guess_flavour(&["/home", "x"]), PathFlavour::Posix);
        assert_eq!(guess_flavour(&[]), PathFlavour::Posix);
    }

    fn path_graph(module: &str, name: &str, args: Vec<Value>) -> (Graph, Value) {
        let mut graph = Graph {
            protocol: 4,
            ..Graph::default()
        };
        let callable = graph.add_global(module, name);
        let root = graph.add_object(ObjectParts::new(BuildKind::Reduce, callable, args));
        graph.root = root.clone();
        (graph, root)
    }

    fn strs(parts: &[&str]) -> Vec<Value> {
        parts.iter().map(|s| Value::str(s)).collect()
    }

    #[test]
    fn reads_pathlib_objects_of_every_flavour_and_module() {
        let (g, v) = path_graph(
            "pathlib",
            "PosixPath",
            strs(&["/", "home", "u", "ws", "abc"]),
        );
        let p = recorded_path(&g, &v).unwrap();
        assert_eq!(
            (p.flavour, p.text.as_str()),
            (PathFlavour::Posix, "/home/u/ws/abc")
        );
        assert_eq!(p.stored_as, "pathlib.PosixPath");

        let (g, v) = path_graph("pathlib._local", "PosixPath", strs(&["/home/u/ws", "abc"]));
        let p = recorded_path(&g, &v).unwrap();
        assert_eq!(p.text, "/home/u/ws/abc");
        assert_eq!(p.stored_as, "pathlib._local.PosixPath");

        let (g, v) = path_graph("pathlib", "WindowsPath", strs(&["F:\\", "Dev", "abc"]));
        let p = recorded_path(&g, &v).unwrap();
        assert_eq!(
            (p.flavour, p.text.as_str()),
            (PathFlavour::Windows, "F:\\Dev\\abc")
        );

        let (g, v) = path_graph("pathlib", "PureWindowsPath", strs(&["F:\\Dev\\ws", "abc"]));
        assert_eq!(recorded_path(&g, &v).unwrap().text, "F:\\Dev\\ws\\abc");

        let (g, v) = path_graph("pathlib", "PurePosixPath", strs(&["rel/ws", "abc"]));
        assert_eq!(recorded_path(&g, &v).unwrap().text, "rel/ws/abc");

        let (g, v) = path_graph("pathlib", "Path", strs(&["C:\\ws", "abc"]));
        let p = recorded_path(&g, &v).unwrap();
        assert_eq!(
            (p.flavour, p.text.as_str()),
            (PathFlavour::Windows, "C:\\ws\\abc")
        );

        // Not a path: another module, another class, a non-str part.
        let (g, v) = path_graph("os", "PosixPath", strs(&["/x"]));
        assert_eq!(recorded_path(&g, &v), None);
        let (g, v) = path_graph("pathlib", "Purr", strs(&["/x"]));
        assert_eq!(recorded_path(&g, &v), None);
        let (g, v) = path_graph("pathlib", "PosixPath", vec![Value::Int(3)]);
        assert_eq!(recorded_path(&g, &v), None);

        let g = Graph::default();
        let p = recorded_path(&g, &Value::str("/srv/ws//abc/")).unwrap();
        assert_eq!(
            (p.text.as_str(), p.stored_as.as_str()),
            ("/srv/ws/abc", "str")
        );
    }
}
