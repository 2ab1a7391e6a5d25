import Logging

/// The group's settings as Apache's parent hands them to the supervisor and the supervisor to
/// its workers, through `SWIFT_GATEWAY_*` environment variables (see docs/architecture.md).
struct GroupSettings: Sendable, Equatable {
    var group: String
    var token: String?
    var peerUID: UInt32?
    /// Workers kept running; 0: a transient group, whose first worker starts on demand.
    var processes: Int
    /// Workers at most while requests queue (`maximum-processes=`): at least `processes`, and 1.
    var maximumProcesses: Int
    var threads: Int
    var listenBacklog: Int32
    var socketPath: String
    var gracefulTimeout: Double
    /// Seconds a request may wait (since Apache read it) before it starts; 0: no limit.
    var queueTimeout: Double
    var shutdownTimeout: Double
    var displayName: String?
    /// Recycle a worker after it served this many requests; 0: never (`maximum-requests=`).
    var maximumRequests: Int
    /// Recycle a worker after this many seconds of life; 0: never (`restart-interval=`).
    var restartInterval: Double
    /// Recycle a worker idle this many seconds; 0: never (`inactivity-timeout=`).
    var inactivityTimeout: Double
    /// Give up on a request running this many seconds; 0: never (`request-timeout=`).
    var requestTimeout: Double
    /// Kill a worker not accepting this many seconds after it was spawned; 0: never (`startup-timeout=`).
    var startupTimeout: Double
    /// Recycle a worker whose resident memory passes this many bytes; 0: no limit (`memory-limit=`).
    var memoryLimit: Int
    /// `RLIMIT_AS` of each worker in bytes; 0: none (`virtual-memory-limit=`).
    var virtualMemoryLimit: Int
    /// `RLIMIT_CPU` of each worker in seconds; 0: none (`cpu-time-limit=`).
    var cpuTimeLimit: Int
    /// Where the application's tasks run (`executor=`).
    var executor: ApplicationExecutor
    /// The group's program as configured (`program=`); nil: the running executable's path.
    var programPath: String?
    /// Roll the workers onto a new build when the program file changes (`reload=`).
    var reload: Bool
    /// Touching this file rolls the workers (`restart-file=`); nil: none.
    var restartFile: String?
    /// The lowest level of the application's lines that Apache keeps: from the `LogLevel` in
    /// force for the module (`SWIFT_GATEWAY_LOG_LEVEL`, an Apache level name); `.info` without it.
    var logLevel: Logger.Level
    /// The cookie that pins a client to one worker (`affinity-cookie=`); nil: no affinity.
    var affinityCookie: String?

    /// Parses the variables; missing ones take the documented defaults, malformed ones are errors.
    init(environment: [String: String]) throws(GroupSettingsError) {
        func integer(_ name: String, default value: Int, minimum: Int) throws(GroupSettingsError) -> Int {
            guard let text = environment[name] else { return value }
            guard let parsed = Int(text), parsed >= minimum else {
                throw GroupSettingsError(variable: name, value: text)
            }
            return parsed
        }
        func seconds(_ name: String, default value: Double) throws(GroupSettingsError) -> Double {
            guard let text = environment[name] else { return value }
            guard let parsed = Double(text), parsed >= 0, parsed.isFinite else {
                throw GroupSettingsError(variable: name, value: text)
            }
            return parsed
        }
        self.group = environment["SWIFT_GATEWAY_GROUP"] ?? "default"
        self.token = environment["SWIFT_GATEWAY_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        if let uidText = environment["SWIFT_GATEWAY_PEER_UID"] {
            guard let uid = UInt32(uidText) else {
                throw GroupSettingsError(variable: "SWIFT_GATEWAY_PEER_UID", value: uidText)
            }
            self.peerUID = uid
        } else {
            self.peerUID = nil
        }
        self.processes = try integer("SWIFT_GATEWAY_PROCESSES", default: 1, minimum: 0)
        self.maximumProcesses = max(
            self.processes, 1, try integer("SWIFT_GATEWAY_MAXIMUM_PROCESSES", default: 0, minimum: 0))
        self.threads = try integer("SWIFT_GATEWAY_THREADS", default: 15, minimum: 1)
        self.listenBacklog = Int32(clamping: try integer("SWIFT_GATEWAY_LISTEN_BACKLOG", default: 128, minimum: 1))
        self.socketPath = environment["SWIFT_GATEWAY_SOCKET"] ?? "fd 3"
        self.gracefulTimeout = try seconds("SWIFT_GATEWAY_GRACEFUL_TIMEOUT", default: 15)
        self.queueTimeout = try seconds("SWIFT_GATEWAY_QUEUE_TIMEOUT", default: 0)
        self.shutdownTimeout = try seconds("SWIFT_GATEWAY_SHUTDOWN_TIMEOUT", default: 5)
        self.displayName = environment["SWIFT_GATEWAY_DISPLAY_NAME"]
        self.maximumRequests = try integer("SWIFT_GATEWAY_MAXIMUM_REQUESTS", default: 0, minimum: 0)
        self.restartInterval = try seconds("SWIFT_GATEWAY_RESTART_INTERVAL", default: 0)
        self.inactivityTimeout = try seconds("SWIFT_GATEWAY_INACTIVITY_TIMEOUT", default: 0)
        self.requestTimeout = try seconds("SWIFT_GATEWAY_REQUEST_TIMEOUT", default: 60)
        self.startupTimeout = try seconds("SWIFT_GATEWAY_STARTUP_TIMEOUT", default: 15)
        self.memoryLimit = try integer("SWIFT_GATEWAY_MEMORY_LIMIT", default: 0, minimum: 0)
        self.virtualMemoryLimit = try integer("SWIFT_GATEWAY_VIRTUAL_MEMORY_LIMIT", default: 0, minimum: 0)
        self.cpuTimeLimit = try integer("SWIFT_GATEWAY_CPU_TIME_LIMIT", default: 0, minimum: 0)
        let executor = environment["SWIFT_GATEWAY_EXECUTOR"] ?? ApplicationExecutor.eventLoop.rawValue
        guard let parsedExecutor = ApplicationExecutor(rawValue: executor) else {
            throw GroupSettingsError(variable: "SWIFT_GATEWAY_EXECUTOR", value: executor)
        }
        self.executor = parsedExecutor
        self.programPath = environment["SWIFT_GATEWAY_PROGRAM"].flatMap { $0.isEmpty ? nil : $0 }
        switch environment["SWIFT_GATEWAY_RELOAD"] {
        case nil, "1": self.reload = true
        case "0": self.reload = false
        case let text?: throw GroupSettingsError(variable: "SWIFT_GATEWAY_RELOAD", value: text)
        }
        self.restartFile = environment["SWIFT_GATEWAY_RESTART_FILE"].flatMap { $0.isEmpty ? nil : $0 }
        if let name = environment["SWIFT_GATEWAY_LOG_LEVEL"] {
            guard let level = ApacheLogLevel.threshold(forApacheLevel: name) else {
                throw GroupSettingsError(variable: "SWIFT_GATEWAY_LOG_LEVEL", value: name)
            }
            self.logLevel = level
        } else {
            self.logLevel = .info
        }
        self.affinityCookie = environment["SWIFT_GATEWAY_AFFINITY_COOKIE"].flatMap { $0.isEmpty ? nil : $0 }
    }
}
