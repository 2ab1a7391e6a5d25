import Logging

/// Apache's log levels as the gateway maps swift-log's onto them.
///
/// An application line at `.trace` or `.debug` is logged at Apache's `debug`, `.info` at `info`,
/// `.notice` at `notice`, `.warning` at `warn`, `.error` at `error`, `.critical` at `crit`.
enum ApacheLogLevel {
    /// Apache's name for the level a swift-log line is logged at.
    static func name(of level: Logger.Level) -> String {
        switch level {
        case .trace, .debug: return "debug"
        case .info: return "info"
        case .notice: return "notice"
        case .warning: return "warn"
        case .error: return "error"
        case .critical: return "crit"
        }
    }

    /// The lowest swift-log level whose lines Apache keeps at `LogLevel name`
    /// (`SWIFT_GATEWAY_LOG_LEVEL`); nil for a name Apache does not have.
    ///
    /// At `alert` and `emerg` Apache keeps none of an application's lines; the threshold is then
    /// `.critical` and the module drops those few itself.
    static func threshold(forApacheLevel name: String) -> Logger.Level? {
        switch name {
        case "emerg", "alert", "crit": return .critical
        case "error": return .error
        case "warn": return .warning
        case "notice": return .notice
        case "info": return .info
        case "debug", "trace1", "trace2", "trace3", "trace4", "trace5", "trace6", "trace7", "trace8":
            return .trace
        default: return nil
        }
    }
}
