use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if args
        .first()
        .is_some_and(|a| a == rd_chain::process::GUARD_ARG)
    {
        return ExitCode::from(rd_chain::process::guard_main(&args[1..]));
    }
    rd_chain::process::use_guards();
    let env: std::collections::BTreeMap<String, std::ffi::OsString> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v)))
        .collect();
    ExitCode::from(rd_chain::main_with(args, env))
}
