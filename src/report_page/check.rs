//! The structure checks of the report page's tests, shared by the unit tests (`report_page::tests`) and the
//! integration tests of `rd-chain report` (included there by path): a strict well-formedness checker for the
//! HTML `report_page` writes, and accessors for its charts, marks and phase sections. Test code only.
#![allow(dead_code)]

const VOID: [&str; 6] = ["meta", "br", "hr", "img", "input", "link"];

/// A strict checker for the HTML this module writes: every non-void element closed in order, `/>` only
/// inside `<svg>`, attribute values double-quoted and free of `<`, text free of raw `<` and `>`, every `&`
/// an entity. Returns the element names in document order.
pub fn well_formed(doc: &str) -> std::result::Result<Vec<String>, String> {
    let mut stack: Vec<String> = Vec::new();
    let mut seen = Vec::new();
    let b = doc.as_bytes();
    let mut i = 0;
    let at = |i: usize| format!("at byte {i}: {:?}", &doc[i..doc.len().min(i + 60)]);
    while i < b.len() {
        match b[i] {
            b'<' if doc[i..].starts_with("<!DOCTYPE html>") => i += "<!DOCTYPE html>".len(),
            b'<' if b.get(i + 1) == Some(&b'/') => {
                let end = doc[i..].find('>').ok_or_else(|| at(i))? + i;
                let name = &doc[i + 2..end];
                match stack.pop() {
                    Some(open) if open == name => {}
                    other => return Err(format!("</{name}> closes {other:?} {}", at(i))),
                }
                i = end + 1;
            }
            b'<' => {
                let name_end = doc[i + 1..]
                    .find(|c: char| !c.is_ascii_alphanumeric() && c != '-')
                    .ok_or_else(|| at(i))?
                    + i
                    + 1;
                let name = doc[i + 1..name_end].to_string();
                if name.is_empty() {
                    return Err(format!("raw '<' in text {}", at(i)));
                }
                // Attributes: name="value" pairs.
                let mut j = name_end;
                let self_closing = loop {
                    while b[j] == b' ' {
                        j += 1;
                    }
                    match b[j] {
                        b'>' => break false,
                        b'/' if b.get(j + 1) == Some(&b'>') => {
                            j += 1;
                            break true;
                        }
                        _ => {
                            let eq = doc[j..].find("=\"").ok_or_else(|| at(j))? + j;
                            let attr = &doc[j..eq];
                            if attr.is_empty()
                                || !attr.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                            {
                                return Err(format!("bad attribute name {attr:?} {}", at(j)));
                            }
                            let close = doc[eq + 2..].find('"').ok_or_else(|| at(eq))? + eq + 2;
                            let value = &doc[eq + 2..close];
                            if value.contains('<') {
                                return Err(format!("'<' in attribute {}", at(eq)));
                            }
                            check_entities(value).map_err(|e| format!("{e} {}", at(eq)))?;
                            j = close + 1;
                        }
                    }
                };
                seen.push(name.clone());
                if self_closing && !stack.iter().any(|t| t == "svg") {
                    return Err(format!("<{name}/> outside svg {}", at(i)));
                }
                i = j + 1;
                if name == "style" {
                    let end = doc[i..].find("</style>").ok_or_else(|| at(i))? + i;
                    if doc[i..end].contains('<') {
                        return Err(format!("markup in <style> {}", at(i)));
                    }
                    i = end + "</style>".len();
                } else if !self_closing && !VOID.contains(&name.as_str()) {
                    stack.push(name);
                }
            }
            b'>' => return Err(format!("raw '>' in text {}", at(i))),
            _ => {
                let end = doc[i..].find(['<', '>']).map_or(doc.len(), |e| e + i);
                check_entities(&doc[i..end]).map_err(|e| format!("{e} {}", at(i)))?;
                i = end;
            }
        }
    }
    if stack.is_empty() {
        Ok(seen)
    } else {
        Err(format!("unclosed: {stack:?}"))
    }
}

pub fn check_entities(s: &str) -> std::result::Result<(), String> {
    for (k, _) in s.match_indices('&') {
        let rest = &s[k + 1..];
        let end = rest.find(';').ok_or("'&' without ';'")?;
        let name = &rest[..end];
        let ok = ["amp", "lt", "gt", "quot", "#39"].contains(&name);
        if !ok {
            return Err(format!("unknown entity &{name};"));
        }
    }
    Ok(())
}

/// The `<svg class="chart"` elements of a page, in order.
pub fn charts(page: &str) -> Vec<&str> {
    page.match_indices("<svg class=\"chart\"")
        .map(|(i, _)| &page[i..i + page[i..].find("</svg>").unwrap() + 6])
        .collect()
}

/// The text of the `<section class="phase" id="phase-N">`.
pub fn phase_section_of(page: &str, n: usize) -> &str {
    let start = page
        .find(&format!("<section class=\"phase\" id=\"phase-{n}\">"))
        .unwrap();
    &page[start..start + page[start..].find("</section>").unwrap()]
}

pub fn number_attr(element: &str, name: &str) -> f64 {
    let key = format!(" {name}=\"");
    let start = element
        .find(&key)
        .unwrap_or_else(|| panic!("{name} in {element}"))
        + key.len();
    element[start..start + element[start..].find('"').unwrap()]
        .parse()
        .unwrap()
}

/// The plot marks (not legend swatches) of a chart, as (class, title, element text).
pub fn marks(svg: &str) -> Vec<(String, String, &str)> {
    svg.match_indices("<g class=\"mark ")
        .map(|(i, _)| &svg[i..i + svg[i..].find("</g>").unwrap()])
        .filter(|m| !m.contains(" key\""))
        .map(|m| {
            let class = m["<g class=\"".len()..m.find("\">").unwrap()].to_string();
            let title = m
                .find("<title>")
                .map(|t| m[t + 7..m.find("</title>").unwrap()].to_string())
                .unwrap_or_default();
            (class, title, m)
        })
        .collect()
}
