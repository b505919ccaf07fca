//! Entry point: reads the settings, starts logging, runs the loop. Exit codes: 0 after a clean
//! stop, 1 when the server cannot run (e.g. a port in use), 2 for a bad setting.

use std::process::ExitCode;

use wsdrain::app::lifecycle::EventLine;
use wsdrain::app::log_json::JsonLogger;
use wsdrain::config::{self, Command, Config, LogFormat};

fn main() -> ExitCode {
    let config = match Config::from_process() {
        Ok(Command::Run(config)) => *config,
        Ok(Command::Print(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("wsdrain: {e}");
            return ExitCode::from(2);
        }
    };
    let logging = match config.log_format {
        LogFormat::Text => simple_logger::SimpleLogger::new()
            .with_level(config.log_level)
            .with_utc_timestamps()
            .init(),
        LogFormat::Json => JsonLogger::init(config.log_level),
    };
    if let Err(e) = logging {
        eprintln!("wsdrain: cannot start logging: {e}");
        return ExitCode::from(1);
    }
    let instance_id = config::instance_id(&config.instance_id);
    log::info!(
        "{}",
        EventLine::new("starting")
            .field("version", env!("CARGO_PKG_VERSION"))
            .field("instance", &instance_id)
            .field("pid", std::process::id())
    );
    match wsdrain::server::run(config, &instance_id) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{}", EventLine::new("stopped").field("error", e));
            ExitCode::from(1)
        }
    }
}
