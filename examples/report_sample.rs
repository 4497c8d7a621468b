//! Writes the sample report pages (a 100-loop chain with failed loops, and three runs compared) into a
//! directory: `cargo run --example report_sample -- DIR`. Used by the browser check and the screenshot
//! script; the data is synthetic (`rd_chain::report_page::sample`).

use std::path::PathBuf;
use std::process::ExitCode;

use rd_chain::report_page::{render_page, sample, PageData};

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: report_sample DIR (writes DIR/run.html and DIR/comparison.html)");
        return ExitCode::from(2);
    };
    let pages = [
        ("run.html", PageData::Run(sample::run_page())),
        (
            "comparison.html",
            PageData::Comparison(sample::comparison_page()),
        ),
    ];
    for (name, page) in pages {
        let path = dir.join(name);
        if let Err(e) =
            std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, render_page(&page)))
        {
            eprintln!("report_sample: cannot write {}: {e}", path.display());
            return ExitCode::from(1);
        }
        println!("{}", path.display());
    }
    ExitCode::SUCCESS
}
