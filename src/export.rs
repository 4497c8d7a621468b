//! `rd-chain export`: a self-describing bundle of a run's answers in a fresh directory.
//!
//! Factor part: the SOTA `combined_factors_df.parquet`, `factors/<name>.py` for each SOTA factor whose code the
//! snapshot holds, and `factors.json`. Model part: `model.py`, `model.json` (name, type, architecture,
//! hyperparameters, metrics, baseline and gain). `manifest.json` names the sources, the rd-chain version and
//! every file with its SHA-256 and size.
//!
//! The target must not exist or be empty; `--force` replaces an earlier bundle by removing only the files its
//! manifest lists (never anything else, never outside the target). Nothing in the source log or workspaces is
//! ever changed: they are only read.

use std::fs;
use std::path::{Component, Path, PathBuf};

use crate::answers::{model_answer_json, Kind, ModelAnswer, RunKind};
use crate::factors::{factor_json, FactorSet};
use crate::json::{self, Json};
use crate::resolve::PARQUET_FILE;
use crate::session::signature::sha256;
use crate::{Error, Result};

/// The manifest's own name inside a bundle.
pub const MANIFEST: &str = "manifest.json";
/// The manifest's format version.
pub const BUNDLE_SCHEMA: i64 = 1;

/// Where a part of the bundle comes from.
#[derive(Clone, Debug, PartialEq)]
pub struct Source {
    /// "factor" or "model".
    pub kind: &'static str,
    pub log_dir: PathBuf,
    pub snapshot: PathBuf,
}

/// What goes into a bundle.
#[derive(Clone, Debug, Default)]
pub struct Bundle {
    pub sources: Vec<Source>,
    pub factors: Option<FactorSet>,
    pub model: Option<ModelAnswer>,
}

/// One file of a written bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleFile {
    /// Relative to the bundle directory, with `/`.
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
}

/// A written bundle.
#[derive(Clone, Debug, PartialEq)]
pub struct Written {
    pub dir: PathBuf,
    pub files: Vec<BundleFile>,
    /// Files of the earlier bundle that `--force` removed.
    pub removed: Vec<String>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A factor name as a file name: letters, digits, `_`, `-` and `.` kept, anything else `_`; never empty, never
/// hidden; a name already taken gets `_2`, `_3`, ...
fn file_stem(name: &str, taken: &mut Vec<String>) -> String {
    let mut stem: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if stem.is_empty() || stem.starts_with('.') {
        stem.insert(0, '_');
    }
    let mut candidate = stem.clone();
    let mut n = 2;
    while taken.iter().any(|t| t.eq_ignore_ascii_case(&candidate)) {
        candidate = format!("{stem}_{n}");
        n += 1;
    }
    taken.push(candidate.clone());
    candidate
}

/// The bundle's files (relative path, content) in the order written.
fn contents(bundle: &Bundle) -> Result<Vec<(String, Vec<u8>)>> {
    let mut files = Vec::new();
    if let Some(set) = &bundle.factors {
        let parquet = fs::read(&set.parquet)
            .map_err(|e| Error::io("cannot read the SOTA factor table", &set.parquet, e))?;
        files.push((PARQUET_FILE.to_string(), parquet));
        let mut taken = Vec::new();
        let mut entries = Vec::new();
        for f in &set.factors {
            let code_file = match f.task.as_ref().and_then(|t| t.code.as_ref()) {
                Some(code) => {
                    let path = format!("factors/{}.py", file_stem(&f.name, &mut taken));
                    files.push((path.clone(), code.as_bytes().to_vec()));
                    Some(path)
                }
                None => None,
            };
            entries.push(factor_json(f, code_file.as_deref()));
        }
        let doc = Json::object()
            .with("sota_index", set.sota_index)
            .with("sota_loop", set.sota_loop)
            .with("count", set.factors.len())
            .with("factors", entries);
        files.push(("factors.json".to_string(), doc.pretty().into_bytes()));
    }
    if let Some(m) = &bundle.model {
        let code = m.sota.task.as_ref().and_then(|t| t.code.as_ref());
        if let Some(code) = code {
            files.push(("model.py".to_string(), code.as_bytes().to_vec()));
        }
        let doc = model_answer_json(m).with("code_file", code.map(|_| "model.py"));
        files.push(("model.json".to_string(), doc.pretty().into_bytes()));
    }
    Ok(files)
}

/// A path a manifest may list: relative, only normal components (no `..`, no root, no prefix).
fn safe_relative(path: &str) -> Option<PathBuf> {
    let p = Path::new(path);
    if path.is_empty() || p.is_absolute() {
        return None;
    }
    p.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| p.to_path_buf())
}

/// The files an earlier bundle's manifest lists (plus the manifest itself), refusing any unsafe path.
fn listed_files(dir: &Path) -> Result<Vec<String>> {
    let manifest = dir.join(MANIFEST);
    let text = fs::read_to_string(&manifest).map_err(|e| {
        Error::usage(format!(
            "{} is not empty and has no readable {MANIFEST} ({e}): --force replaces only an earlier rd-chain \
             bundle; choose an empty or new directory",
            dir.display()
        ))
    })?;
    let bad = |why: String| {
        Error::usage(format!(
            "{} cannot be used to replace the bundle: {why}; nothing was removed",
            manifest.display()
        ))
    };
    let doc = json::parse(&text).map_err(|e| bad(format!("not JSON ({e})")))?;
    let Some(Json::Array(files)) = doc.get("files") else {
        return Err(bad("it has no `files` list".to_string()));
    };
    let mut out = Vec::new();
    for f in files {
        let path = f
            .get("path")
            .and_then(Json::as_str)
            .ok_or_else(|| bad("a file entry has no `path`".to_string()))?;
        if safe_relative(path).is_none() {
            return Err(bad(format!(
                "it lists {path:?}, which is not a path inside the bundle"
            )));
        }
        out.push(path.to_string());
    }
    out.push(MANIFEST.to_string());
    Ok(out)
}

fn is_empty_dir(dir: &Path) -> Result<bool> {
    let mut entries =
        fs::read_dir(dir).map_err(|e| Error::io("cannot read the export directory", dir, e))?;
    Ok(entries.next().is_none())
}

/// Write `bundle` into `dir`. `dir` must not exist or be empty; with `force`, an earlier bundle there is
/// replaced: only the files its manifest lists are removed (then directories they leave empty).
pub fn write(bundle: &Bundle, dir: &Path, force: bool) -> Result<Written> {
    let files = contents(bundle)?;
    let mut removed = Vec::new();
    match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("cannot read the export directory", dir, e)),
        Ok(meta) if !meta.is_dir() => {
            return Err(Error::usage(format!(
                "the export target {} exists and is not a directory: pass a new or empty directory",
                dir.display()
            )))
        }
        Ok(_) if is_empty_dir(dir)? => {}
        Ok(_) if !force => {
            return Err(Error::usage(format!(
                "the export directory {} is not empty: pass a new or empty directory, or --force to replace an \
                 earlier rd-chain bundle there (only the files its {MANIFEST} lists are removed)",
                dir.display()
            )))
        }
        Ok(_) => {
            let listed = listed_files(dir)?;
            // Refuse before removing anything when a new file would overwrite one the old bundle does not own.
            for (path, _) in &files {
                let target = dir.join(path);
                if target.exists() && !listed.iter().any(|l| l == path) {
                    return Err(Error::usage(format!(
                        "{} exists and is not part of the earlier bundle: move it away first; nothing was removed",
                        target.display()
                    )));
                }
            }
            for path in &listed {
                let target = dir.join(path);
                match fs::remove_file(&target) {
                    Ok(()) => removed.push(path.clone()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io("cannot remove a file of the earlier bundle", &target, e)),
                }
                // Directories the listed files leave empty go too (never the bundle directory itself).
                let mut parent = Path::new(path).parent();
                while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
                    if fs::remove_dir(dir.join(p)).is_err() {
                        break;
                    }
                    parent = p.parent();
                }
            }
        }
    }
    fs::create_dir_all(dir).map_err(|e| Error::io("cannot create the export directory", dir, e))?;
    let mut written = Vec::new();
    for (path, data) in &files {
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(|e| Error::io("cannot create", parent, e))?;
        }
        fs::write(&target, data).map_err(|e| Error::io("cannot write", &target, e))?;
        written.push(BundleFile {
            path: path.clone(),
            sha256: hex(&sha256(data)),
            bytes: data.len() as u64,
        });
    }
    let manifest = Json::object()
        .with("bundle_schema", BUNDLE_SCHEMA)
        .with("rd_chain_version", env!("CARGO_PKG_VERSION"))
        .with(
            "sources",
            bundle
                .sources
                .iter()
                .map(|s| {
                    Json::object()
                        .with("kind", s.kind)
                        .with("log_dir", &s.log_dir)
                        .with("snapshot", &s.snapshot)
                })
                .collect::<Vec<_>>(),
        )
        .with(
            "contents",
            Json::object()
                .with("factors", bundle.factors.as_ref().map(|s| s.factors.len()))
                .with("model", bundle.model.is_some()),
        )
        .with("files", files_json(&written));
    let target = dir.join(MANIFEST);
    fs::write(&target, manifest.pretty()).map_err(|e| Error::io("cannot write", &target, e))?;
    Ok(Written {
        dir: dir.to_path_buf(),
        files: written,
        removed,
    })
}

/// What `export` writes for a run: the factor part when asked for (or, without `--kind`, when the run holds
/// factor experiments), the model part likewise. A part that was asked for and cannot be made is exit 3.
pub fn bundle_of(run: &crate::answers::Run, kind: Option<Kind>) -> Result<Bundle> {
    let survey = &run.inspection.survey;
    let run_kind = run.answers.kind;
    let want_factor = kind.map_or(matches!(run_kind, RunKind::Factor | RunKind::Quant), |k| {
        k == Kind::Factor
    });
    let want_model = kind.map_or(matches!(run_kind, RunKind::Model | RunKind::Quant), |k| {
        k == Kind::Model
    });
    if !want_factor && !want_model {
        return Err(Error::resolution(format!(
            "{} holds no experiment to export ({})",
            survey.session.log_dir.display(),
            survey.counts()
        )));
    }
    let source = |kind| Source {
        kind,
        log_dir: survey.session.log_dir.clone(),
        snapshot: survey.session.snapshot.path.clone(),
    };
    let mut bundle = Bundle::default();
    if want_factor {
        let picked = match &run.inspection.outcome {
            Ok(p) => p,
            Err(e) => {
                return Err(crate::answers::not_a_factor_run(
                    survey,
                    Error::resolution(e.to_string()),
                ))
            }
        };
        let set = crate::factors::factor_set(
            survey,
            &run.details,
            picked.index,
            picked.parquet.path.clone(),
        )?;
        bundle.factors = Some(set);
        bundle.sources.push(source("factor"));
    }
    if want_model {
        crate::answers::resolve_model(survey, &run.answers.models)?;
        bundle.model = run.answers.model.clone();
        bundle.sources.push(source("model"));
    }
    Ok(bundle)
}

/// Refuse a bundle directory that exists and is not empty, before anything long starts (the chain checks
/// `--export DIR` up front).
pub fn check_target(dir: &Path) -> Result<()> {
    match fs::symlink_metadata(dir) {
        Err(_) => Ok(()),
        Ok(meta) if !meta.is_dir() => Err(Error::usage(format!(
            "the export target {} exists and is not a directory: pass a new or empty directory",
            dir.display()
        ))),
        Ok(_) if is_empty_dir(dir)? => Ok(()),
        Ok(_) => Err(Error::usage(format!(
            "the export directory {} is not empty: pass a new or empty directory (`rd-chain export --force` \
             replaces an earlier bundle)",
            dir.display()
        ))),
    }
}

/// `export` stdout: the bundle directory, then one line per file.
pub fn written_text(w: &Written) -> String {
    let mut out = format!("bundle {}\n", w.dir.display());
    for f in &w.files {
        out.push_str(&format!("  {}  {:>10}  {}\n", f.sha256, f.bytes, f.path));
    }
    out.push_str(&format!("  (and {MANIFEST})\n"));
    if !w.removed.is_empty() {
        out.push_str(&format!(
            "replaced an earlier bundle: removed {} files it listed\n",
            w.removed.len()
        ));
    }
    out
}

/// The files of a bundle with their digests and sizes: `files` in the manifest and in `export --json`.
fn files_json(files: &[BundleFile]) -> Json {
    Json::Array(
        files
            .iter()
            .map(|f| {
                Json::object()
                    .with("path", f.path.as_str())
                    .with("sha256", f.sha256.as_str())
                    .with("bytes", f.bytes)
            })
            .collect(),
    )
}

/// `export --json`.
pub fn written_json(w: &Written) -> Json {
    Json::object()
        .with("dir", &w.dir)
        .with("manifest", &w.dir.join(MANIFEST))
        .with("files", files_json(&w.files))
        .with("removed", w.removed.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factor_names_become_safe_distinct_file_names() {
        let mut taken = Vec::new();
        assert_eq!(file_stem("Mom_5D", &mut taken), "Mom_5D");
        assert_eq!(file_stem("../etc/passwd", &mut taken), "_.._etc_passwd");
        assert_eq!(file_stem("a/b", &mut taken), "a_b");
        assert_eq!(file_stem("a b", &mut taken), "a_b_2");
        assert_eq!(file_stem("", &mut taken), "_");
        // Case-insensitive file systems: names that differ only in case get distinct files.
        assert_eq!(file_stem("MOM_5d", &mut taken), "MOM_5d_2");
        assert_eq!(file_stem("mom_5d", &mut taken), "mom_5d_3");
    }

    #[test]
    fn only_plain_relative_paths_may_be_removed() {
        assert!(safe_relative("factors/a.py").is_some());
        assert!(safe_relative("model.py").is_some());
        for bad in ["", "/etc/passwd", "../x", "a/../../x", "./a"] {
            assert!(safe_relative(bad).is_none(), "{bad}");
        }
    }
}
