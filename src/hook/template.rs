//! Can RD-Agent's SOTA config train without the base features? Decided in Rust from the template's text, the
//! same way as the hook's `sota_template_problem` (scripts/rdagent_hook/sitecustomize.py), with no Python.
//!
//! RD-Agent's model runner renders `exp.base_features` into the template as `feature_expressions` and
//! `feature_names` (Python list literals) and writes the SOTA factors to `combined_factors_df.parquet`, which
//! the template loads with its own loader (RD-Agent 1.0: a `StaticDataLoader` next to an `Alpha158DL` inside a
//! `NestedDataLoader`). The factors never enter another loader's field list. So with the base features left out
//! the template is rendered with both variables as `[]`, and every data loader of Qlib's `QlibDataLoader` family
//! (`contract::QLIB_FIELD_LOADERS`) is looked at: a field group given as an empty list, or as an (expressions,
//! names) pair with no expressions, makes Qlib fail (an empty list when the loader is built, "fields cannot be
//! empty" from `D.features` when it loads: `NestedDataLoader` passes that error on), so no model can train.
//!
//! The template is Jinja over YAML. Rendering here substitutes only what matters: the two feature variables
//! become `[]`, every other `{{ ... }}` a plain scalar, and `{% ... %}` / `{# ... #}` tags are dropped. The YAML
//! reader handles the block and flow forms config files use (mappings, sequences, `- key: value` items, flow
//! `[...]`/`{...}` over several lines, quoted and plain scalars, anchors, comments, block scalars); text it
//! cannot read gives `Undecided`, never a guess.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{contract, decide, HookDecision, HookMode};

/// The verdict on a SOTA config template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TemplateVerdict {
    /// No Qlib field loader is left without fields when the base features are left out.
    Runs,
    /// This loader's field group is empty without the base features: every model run would fail.
    NeedsBaseFeatures { loader: String, group: String },
    /// The text could not be read as a config template; nothing is claimed.
    Undecided(String),
}

impl TemplateVerdict {
    /// The problem in words (the hook's `template` report line says the same), for `NeedsBaseFeatures`.
    pub fn problem(&self) -> Option<String> {
        match self {
            TemplateVerdict::NeedsBaseFeatures { loader, group } => Some(format!(
                "{} gives {loader} an empty '{group}' field list when the base features are left out, and \
                 Qlib's data loader refuses that (\"fields cannot be empty\"): every model run would fail",
                contract::SOTA_MODEL_TEMPLATE
            )),
            _ => None,
        }
    }
}

/// Check the text of a SOTA config template (see the module doc).
pub fn check(template: &str) -> TemplateVerdict {
    let rendered = render(template);
    let tree = match parse(&rendered) {
        Ok(tree) => tree,
        Err(why) => return TemplateVerdict::Undecided(why),
    };
    match first_empty_group(&tree, 0) {
        Some((loader, group)) => TemplateVerdict::NeedsBaseFeatures { loader, group },
        None => TemplateVerdict::Runs,
    }
}

/// The installed rdagent's SOTA template and its verdict, for a model phase asked to train without the base
/// features with the hook on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateCheck {
    /// The template file read (None when it could not be found).
    pub template: Option<PathBuf>,
    pub verdict: TemplateVerdict,
}

impl TemplateCheck {
    /// The sentence for the dry run and the log when nothing could be decided.
    pub fn undecided(&self) -> Option<String> {
        match &self.verdict {
            TemplateVerdict::Undecided(why) => Some(format!(
                "{}=false: whether RD-Agent's {} can train without base features was not checked: {why}; the \
                 hook checks the workspace's copy when the model phase runs and reports a problem",
                contract::ALPHA_FACTORS_ENV,
                contract::SOTA_MODEL_TEMPLATE
            )),
            _ => None,
        }
    }
}

/// Find the SOTA template of the rdagent the model phase runs and check it. The package dir comes from the
/// hook decision's probe (`auto`), or from the same probe run now (`on`); nothing of rdagent is imported.
/// `rdagent` is the program or why there is none; `child_env` is the environment the probe sees.
pub fn check_installed(
    decision: &HookDecision,
    rdagent: std::result::Result<&Path, &str>,
    child_env: &BTreeMap<String, std::ffi::OsString>,
) -> TemplateCheck {
    let undecided = |why: String| TemplateCheck {
        template: None,
        verdict: TemplateVerdict::Undecided(why),
    };
    let program = match rdagent {
        Ok(p) => p,
        Err(why) => return undecided(format!("rdagent was not found ({why})")),
    };
    let package = match (&decision.model_runner, decision.mode) {
        (Some(runner), _) => match contract::package_of_model_runner(runner) {
            Some(p) => p,
            None => return undecided(format!("{} is not inside a package", runner.display())),
        },
        (None, HookMode::Auto) => {
            return undecided(format!(
                "the rdagent package was not found ({})",
                decision.reason
            ))
        }
        (None, _) => match decide::find_package_in_env(program, child_env) {
            Ok(p) => p,
            Err(why) => return undecided(format!("the rdagent package was not found ({why})")),
        },
    };
    let template = contract::sota_template_file(&package);
    match std::fs::read(&template) {
        Ok(bytes) => {
            let verdict = match String::from_utf8(bytes) {
                Ok(text) => match check(&text) {
                    TemplateVerdict::Undecided(why) => TemplateVerdict::Undecided(format!(
                        "{} cannot be read as a config template ({why})",
                        template.display()
                    )),
                    other => other,
                },
                Err(_) => {
                    TemplateVerdict::Undecided(format!("{} is not UTF-8 text", template.display()))
                }
            };
            TemplateCheck {
                template: Some(template),
                verdict,
            }
        }
        Err(e) => undecided(format!("cannot read {} ({e})", template.display())),
    }
}

/// The variables RD-Agent renders the base features into.
const FEATURE_VARIABLES: [&str; 2] = ["feature_expressions", "feature_names"];

/// The template as RD-Agent's runner would render it with no base features (see the module doc).
fn render(template: &str) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let after = &rest[start..];
        let close = if after.starts_with("{{") {
            "}}"
        } else if after.starts_with("{%") {
            "%}"
        } else if after.starts_with("{#") {
            "#}"
        } else {
            out.push_str(&rest[..start + 1]);
            rest = &rest[start + 1..];
            continue;
        };
        out.push_str(&rest[..start]);
        let Some(end) = after[2..].find(close) else {
            // An unclosed tag: Jinja would refuse the template; keep the text, the YAML reader decides.
            out.push_str(after);
            return out;
        };
        let inner = &after[2..2 + end];
        if close == "}}" {
            let variable: String = inner
                .trim_start_matches(['-', '+'])
                .trim_start()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            out.push_str(if FEATURE_VARIABLES.contains(&variable.as_str()) {
                "[]"
            } else {
                "rendered"
            });
        }
        rest = &after[2 + end + 2..];
    }
    out.push_str(rest);
    out
}

/// A YAML value, as far as the check needs it.
#[derive(Clone, Debug, PartialEq)]
enum Node {
    Map(Vec<(String, Node)>),
    Seq(Vec<Node>),
    Scalar(String),
    Null,
}

/// Like the hook's `empty_loader_groups`, the first one in document order: (loader class, group name).
fn first_empty_group(node: &Node, depth: usize) -> Option<(String, String)> {
    if depth > 50 {
        return None;
    }
    match node {
        Node::Map(entries) => {
            let class = entries.iter().find(|(k, _)| k == "class").map(|(_, v)| v);
            if let Some(Node::Scalar(class)) = class {
                let short = class.rsplit('.').next().unwrap_or(class);
                if contract::QLIB_FIELD_LOADERS.contains(&short) {
                    if let Some(Node::Map(groups)) =
                        get(node, "kwargs").and_then(|k| get(k, "config"))
                    {
                        for (group, fields) in groups {
                            let exprs = match fields {
                                Node::Seq(items) if matches!(items.first(), Some(Node::Seq(_))) => {
                                    &items[0]
                                }
                                other => other,
                            };
                            if matches!(exprs, Node::Seq(items) if items.is_empty()) {
                                return Some((class.clone(), group.clone()));
                            }
                        }
                    }
                }
            }
            entries
                .iter()
                .find_map(|(_, v)| first_empty_group(v, depth + 1))
        }
        Node::Seq(items) => items.iter().find_map(|v| first_empty_group(v, depth + 1)),
        _ => None,
    }
}

fn get<'a>(node: &'a Node, key: &str) -> Option<&'a Node> {
    match node {
        Node::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The YAML reader

struct Line {
    indent: usize,
    text: String,
    number: usize,
}

/// The rendered template as one YAML document.
fn parse(text: &str) -> Result<Node, String> {
    let mut lines = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let raw = raw.trim_end_matches('\r');
        if raw[..raw.len() - raw.trim_start().len()].contains('\t') {
            return Err(format!("line {}: a tab in the indentation", i + 1));
        }
        let body = strip_comment(raw);
        let trimmed = body.trim_end();
        let indent = trimmed.len() - trimmed.trim_start().len();
        let text = trimmed.trim_start();
        if text.is_empty() || text == "---" || text == "..." || text.starts_with('%') {
            continue;
        }
        lines.push(Line {
            indent,
            text: text.to_string(),
            number: i + 1,
        });
    }
    let mut reader = Reader { lines, at: 0 };
    if reader.lines.is_empty() {
        return Ok(Node::Null);
    }
    let indent = reader.lines[0].indent;
    let node = reader.block(indent)?;
    if let Some(line) = reader.lines.get(reader.at) {
        return Err(format!(
            "line {}: unexpected indentation or text: {:?}",
            line.number, line.text
        ));
    }
    Ok(node)
}

/// `line` without a `#` comment (a `#` at the start or after a blank, outside quotes).
fn strip_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut previous = ' ';
    for (i, c) in line.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if (c == '"' || c == '\'') && (previous == ' ' || "[{,:-".contains(previous)) => {
                quote = Some(c)
            }
            None if c == '#' && (previous == ' ' || previous == '\t' || i == 0) => {
                return &line[..i]
            }
            None => {}
        }
        previous = c;
    }
    line
}

struct Reader {
    lines: Vec<Line>,
    at: usize,
}

impl Reader {
    fn peek(&self) -> Option<&Line> {
        self.lines.get(self.at)
    }

    /// The block that starts at the current line, which is at `indent`.
    fn block(&mut self, indent: usize) -> Result<Node, String> {
        let Some(line) = self.peek() else {
            return Ok(Node::Null);
        };
        if is_item(&line.text) {
            self.sequence(indent)
        } else if split_key(&line.text).is_some() {
            self.mapping(indent)
        } else {
            let text = line.text.clone();
            self.at += 1;
            if is_flow_start(&text) {
                return self.flow_rest(text, indent);
            }
            self.value(text, indent, false)
        }
    }

    fn mapping(&mut self, indent: usize) -> Result<Node, String> {
        let mut entries = Vec::new();
        while let Some(line) = self.peek() {
            if line.indent != indent || is_item(&line.text) {
                break;
            }
            let number = line.number;
            let text = line.text.clone();
            let Some((key, value)) = split_key(&text) else {
                return Err(format!("line {number}: expected `key: value`: {text:?}"));
            };
            self.at += 1;
            let value = self.value(value, indent, true)?;
            entries.push((key, value));
        }
        Ok(Node::Map(entries))
    }

    fn sequence(&mut self, indent: usize) -> Result<Node, String> {
        let mut items = Vec::new();
        while let Some(line) = self.peek() {
            if line.indent != indent || !is_item(&line.text) {
                break;
            }
            let rest = line.text[1..].to_string();
            let inner = rest.trim_start();
            let column = indent + 1 + (rest.len() - inner.len());
            if inner.is_empty() {
                self.at += 1;
                items.push(self.nested(indent, false)?);
            } else if is_item(inner) || (split_key(inner).is_some() && !is_flow_start(inner)) {
                // `- key: value` or `- - x`: the item is a block that starts at the item's text.
                let line = &mut self.lines[self.at];
                line.indent = column;
                line.text = inner.to_string();
                items.push(self.block(column)?);
            } else {
                self.at += 1;
                items.push(self.value(inner.to_string(), indent, false)?);
            }
        }
        Ok(Node::Seq(items))
    }

    /// The value after `key:` (or `- `) on a line at `indent`, the line itself already taken.
    fn value(&mut self, text: String, indent: usize, in_map: bool) -> Result<Node, String> {
        let text = strip_properties(&text);
        if text.is_empty() {
            return self.nested(indent, in_map);
        }
        if is_flow_start(&text) {
            return self.flow_rest(text, indent);
        }
        if text.starts_with('|') || text.starts_with('>') {
            let mut body = Vec::new();
            while let Some(l) = self.peek() {
                if l.indent <= indent {
                    break;
                }
                body.push(l.text.clone());
                self.at += 1;
            }
            return Ok(Node::Scalar(body.join("\n")));
        }
        let mut joined = text;
        // A plain scalar folded over more deeply indented lines.
        while let Some(l) = self.peek() {
            if l.indent <= indent || split_key(&l.text).is_some() || is_item(&l.text) {
                break;
            }
            joined.push(' ');
            joined.push_str(&l.text);
            self.at += 1;
        }
        Ok(scalar(&joined))
    }

    /// The block under a `key:` or `-` with nothing after it: deeper lines, or (for a key) a sequence at the
    /// key's own indentation.
    fn nested(&mut self, indent: usize, in_map: bool) -> Result<Node, String> {
        match self.peek() {
            Some(l) if l.indent > indent => {
                let i = l.indent;
                self.block(i)
            }
            Some(l) if in_map && l.indent == indent && is_item(&l.text) => self.sequence(indent),
            _ => Ok(Node::Null),
        }
    }

    /// A flow value starting with `first`, continued on the following lines until its brackets close.
    fn flow_rest(&mut self, first: String, indent: usize) -> Result<Node, String> {
        let mut text = first;
        while !brackets_closed(&text) {
            match self.peek() {
                Some(l)
                    if l.indent > indent || l.text.starts_with(']') || l.text.starts_with('}') =>
                {
                    text.push(' ');
                    text.push_str(&l.text);
                    self.at += 1;
                }
                _ => return Err(format!("an unclosed flow collection: {text:?}")),
            }
        }
        let mut flow = Flow {
            chars: text.chars().collect(),
            at: 0,
        };
        let node = flow.value()?;
        flow.blanks();
        if flow.at != flow.chars.len() {
            return Err(format!("text after a flow collection: {text:?}"));
        }
        Ok(node)
    }
}

fn is_item(text: &str) -> bool {
    text == "-" || text.starts_with("- ")
}

fn is_flow_start(text: &str) -> bool {
    text.starts_with('[') || text.starts_with('{')
}

/// Drop a leading anchor (`&name`) or tag (`!tag`) from a value.
fn strip_properties(text: &str) -> String {
    let mut rest = text.trim();
    while rest.starts_with('&') || rest.starts_with('!') {
        rest = match rest.find(' ') {
            Some(i) => rest[i..].trim_start(),
            None => "",
        };
    }
    rest.to_string()
}

/// `key: value` at the top level of `text` (outside quotes and brackets): the key (unquoted) and the value.
fn split_key(text: &str) -> Option<(String, String)> {
    let mut quote: Option<char> = None;
    let mut depth = 0i32;
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    for (n, &(i, c)) in chars.iter().enumerate() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '"' | '\'' if n == 0 => quote = Some(c),
                '[' | '{' => depth += 1,
                ']' | '}' => depth -= 1,
                ':' if depth == 0 => {
                    let next = chars.get(n + 1).map(|&(_, c)| c);
                    if next.is_none() || next == Some(' ') {
                        let key = text[..i].trim();
                        if key.is_empty() {
                            return None;
                        }
                        let key = match scalar(key) {
                            Node::Scalar(k) => k,
                            _ => key.to_string(),
                        };
                        return Some((key, text[i + 1..].trim().to_string()));
                    }
                }
                _ => {}
            },
        }
    }
    None
}

fn brackets_closed(text: &str) -> bool {
    let mut quote: Option<char> = None;
    let mut depth = 0i32;
    for c in text.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '"' | '\'' => quote = Some(c),
                '[' | '{' => depth += 1,
                ']' | '}' => depth -= 1,
                _ => {}
            },
        }
    }
    depth <= 0 && quote.is_none()
}

/// A block scalar's value: quotes removed; `null`, `~` and nothing are Null.
fn scalar(text: &str) -> Node {
    let t = text.trim();
    if t.is_empty() || t == "~" || t == "null" || t == "Null" || t == "NULL" {
        return Node::Null;
    }
    if t.len() >= 2
        && (t.starts_with('"') && t.ends_with('"') || t.starts_with('\'') && t.ends_with('\''))
    {
        return Node::Scalar(t[1..t.len() - 1].to_string());
    }
    Node::Scalar(t.to_string())
}

/// A flow collection (`[...]`, `{...}`) and the scalars in it.
struct Flow {
    chars: Vec<char>,
    at: usize,
}

impl Flow {
    fn blanks(&mut self) {
        while self.chars.get(self.at).is_some_and(|c| c.is_whitespace()) {
            self.at += 1;
        }
    }

    fn value(&mut self) -> Result<Node, String> {
        self.blanks();
        match self.chars.get(self.at) {
            Some('[') => {
                self.at += 1;
                let mut items = Vec::new();
                loop {
                    self.blanks();
                    match self.chars.get(self.at) {
                        Some(']') => {
                            self.at += 1;
                            return Ok(Node::Seq(items));
                        }
                        None => return Err("an unclosed `[`".to_string()),
                        _ => {}
                    }
                    items.push(self.value()?);
                    self.separator(']')?;
                }
            }
            Some('{') => {
                self.at += 1;
                let mut entries = Vec::new();
                loop {
                    self.blanks();
                    match self.chars.get(self.at) {
                        Some('}') => {
                            self.at += 1;
                            return Ok(Node::Map(entries));
                        }
                        None => return Err("an unclosed `{`".to_string()),
                        _ => {}
                    }
                    let key = match self.value()? {
                        Node::Scalar(k) => k,
                        Node::Null => String::new(),
                        _ => return Err("a collection as a flow mapping key".to_string()),
                    };
                    self.blanks();
                    let value = if self.chars.get(self.at) == Some(&':') {
                        self.at += 1;
                        self.value()?
                    } else {
                        Node::Null
                    };
                    entries.push((key, value));
                    self.separator('}')?;
                }
            }
            Some(&q) if q == '"' || q == '\'' => {
                self.at += 1;
                let mut s = String::new();
                loop {
                    match self.chars.get(self.at) {
                        None => return Err("an unclosed quoted string".to_string()),
                        Some(&c) if c == q => {
                            if q == '\'' && self.chars.get(self.at + 1) == Some(&'\'') {
                                s.push('\'');
                                self.at += 2;
                                continue;
                            }
                            self.at += 1;
                            return Ok(Node::Scalar(s));
                        }
                        Some('\\') if q == '"' => {
                            if let Some(&c) = self.chars.get(self.at + 1) {
                                s.push(c);
                            }
                            self.at += 2;
                        }
                        Some(&c) => {
                            s.push(c);
                            self.at += 1;
                        }
                    }
                }
            }
            _ => {
                let start = self.at;
                while let Some(&c) = self.chars.get(self.at) {
                    let ends_key = c == ':'
                        && self
                            .chars
                            .get(self.at + 1)
                            .is_none_or(|n| n.is_whitespace() || ",]}".contains(*n));
                    if c == ',' || c == ']' || c == '}' || ends_key {
                        break;
                    }
                    self.at += 1;
                }
                let text: String = self.chars[start..self.at].iter().collect();
                Ok(scalar(&strip_properties(&text)))
            }
        }
    }

    /// After an item: `,` or the closing bracket (left for the caller).
    fn separator(&mut self, close: char) -> Result<(), String> {
        self.blanks();
        match self.chars.get(self.at) {
            Some(',') => {
                self.at += 1;
                Ok(())
            }
            Some(&c) if c == close => Ok(()),
            Some(&c) => Err(format!("unexpected {c:?} in a flow collection")),
            None => Err(format!("an unclosed flow collection (expected {close:?})")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shared cases: the same template texts and verdicts the hook's pytest checks
    /// (scripts/tests/test_template_cases.py).
    #[test]
    fn the_shared_template_cases_get_their_verdicts() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("scripts/rdagent_double/sota_templates");
        let table = std::fs::read_to_string(dir.join("verdicts.tsv")).unwrap();
        let mut seen = 0;
        for line in table
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        {
            let fields: Vec<&str> = line.split('\t').collect();
            let text = std::fs::read_to_string(dir.join(fields[0])).unwrap();
            let expected = match fields[1] {
                "runs" => TemplateVerdict::Runs,
                "needs-base-features" => TemplateVerdict::NeedsBaseFeatures {
                    loader: fields[2].to_string(),
                    group: fields[3].to_string(),
                },
                other => panic!("unknown verdict {other:?} in verdicts.tsv"),
            };
            assert_eq!(check(&text), expected, "{}", fields[0]);
            seen += 1;
        }
        assert!(seen >= 6, "only {seen} cases");
    }

    #[test]
    fn the_test_doubles_installed_template_needs_the_base_features() {
        let path = contract::sota_template_file(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("scripts/rdagent_double/rdagent"),
        );
        let verdict = check(&std::fs::read_to_string(path).unwrap());
        assert_eq!(
            verdict,
            TemplateVerdict::NeedsBaseFeatures {
                loader: "qlib.contrib.data.loader.Alpha158DL".to_string(),
                group: "feature".to_string()
            }
        );
        let problem = verdict.problem().unwrap();
        assert!(
            problem.contains("fields cannot be empty") && problem.contains("'feature'"),
            "{problem}"
        );
    }

    #[test]
    fn rendering_fills_only_the_feature_variables_with_empty_lists() {
        assert_eq!(
            render("a: {{ feature_names }}\nb: {{feature_expressions}}\nc: {{ n | default(\"1\", true) }}{% if x %}\nd: 1{% endif %}{# note #}\n"),
            "a: []\nb: []\nc: rendered\nd: 1\n"
        );
        assert_eq!(
            render("e: {x: 1}\nf: {{ unclosed"),
            "e: {x: 1}\nf: {{ unclosed"
        );
    }

    #[test]
    fn the_reader_builds_the_structure_of_block_and_flow_yaml() {
        let tree = parse(
            "top: &anchor   # comment\n  list:\n  - class: A\n    kwargs: {k: [1, 'two', \"th#ree\"]}\n  - - nested\n  - [a,\n     [b, c]]\n  text: |\n    line: 1\n  quoted: \"x: y\"\nalias: *anchor\n",
        )
        .unwrap();
        let s = |v: &str| Node::Scalar(v.to_string());
        assert_eq!(
            tree,
            Node::Map(vec![
                (
                    "top".to_string(),
                    Node::Map(vec![
                        (
                            "list".to_string(),
                            Node::Seq(vec![
                                Node::Map(vec![
                                    ("class".to_string(), s("A")),
                                    (
                                        "kwargs".to_string(),
                                        Node::Map(vec![(
                                            "k".to_string(),
                                            Node::Seq(vec![s("1"), s("two"), s("th#ree")])
                                        )])
                                    ),
                                ]),
                                Node::Seq(vec![s("nested")]),
                                Node::Seq(vec![s("a"), Node::Seq(vec![s("b"), s("c")])]),
                            ])
                        ),
                        ("text".to_string(), s("line: 1")),
                        ("quoted".to_string(), s("x: y")),
                    ])
                ),
                ("alias".to_string(), s("*anchor")),
            ])
        );
    }

    #[test]
    fn unreadable_text_is_undecided_not_guessed() {
        for text in [
            "a:\n  - [1, 2\nb: 1\n",
            "a: 1\n   b: 2\n",
            "a:\n\t- x\n",
            "loader: {class: QlibDataLoader, kwargs: {config: {feature: [[], []]}}} trailing]\n",
        ] {
            assert!(
                matches!(check(text), TemplateVerdict::Undecided(_)),
                "{text:?}: {:?}",
                check(text)
            );
        }
        assert_eq!(check(""), TemplateVerdict::Runs);
    }
}
