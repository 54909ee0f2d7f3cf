fn main() -> std::process::ExitCode {
    prometheus_stack::cli::main()
}
