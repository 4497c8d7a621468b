//! The one integration-test binary: runs the real `rd-chain` in fresh temp dirs with a cleared environment.

#[path = "cli/util.rs"]
mod util;

#[path = "cli/resolve.rs"]
mod resolve;

#[path = "cli/launcher.rs"]
mod launcher;

#[path = "cli/hook.rs"]
mod hook;

#[path = "cli/json_read.rs"]
mod json_read;

#[path = "cli/hardening.rs"]
mod hardening;

#[path = "cli/progress.rs"]
mod progress;

#[path = "cli/alpha.rs"]
mod alpha;

#[path = "cli/answers.rs"]
mod answers;
#[path = "cli/chains.rs"]
mod chains;

#[path = "cli/report.rs"]
mod report;

#[path = "../src/report_page/check.rs"]
mod page_check;
