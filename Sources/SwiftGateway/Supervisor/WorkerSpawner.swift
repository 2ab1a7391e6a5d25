#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Starts worker processes: the same program, in the worker role, sharing fd 3 (the group
/// socket) and fd 4 (the scoreboard).
struct WorkerSpawner: Sendable {
    /// The program's own executable, resolved once so a later `/proc/self/exe` lookup is not needed.
    var executablePath: String
    var arguments: [String]
    var environment: [String: String]
    /// The group's scoreboard, placed at fd 4 in each worker; nil: workers run without one.
    private(set) var scoreboardDescriptor: CInt?

    init(executablePath: String, processTitle: String, arguments: [String], environment: [String: String]) {
        self.executablePath = executablePath
        self.arguments = [processTitle] + arguments
        var environment = environment
        environment["SWIFT_GATEWAY_ROLE"] = "worker"
        environment["SWIFT_GATEWAY_SUPERVISOR_PID"] = String(getpid())
        environment["LISTEN_FDS"] = "1"
        // LISTEN_PID names one process; workers identify fd 3 by their role instead.
        environment["LISTEN_PID"] = nil
        self.environment = environment
    }

    /// Hands `descriptor` (close-on-exec here) to every worker spawned from now on as fd 4.
    mutating func shareScoreboard(_ descriptor: CInt) {
        var descriptor = descriptor
        // dup2 onto itself would keep close-on-exec: move it off fd 4 first.
        if descriptor == GroupScoreboard.workerDescriptor {
            descriptor = fcntl(descriptor, F_DUPFD_CLOEXEC, GroupScoreboard.workerDescriptor + 1)
            close(GroupScoreboard.workerDescriptor)
            guard descriptor >= 0 else { return }
        }
        self.scoreboardDescriptor = descriptor
        self.environment[GroupScoreboard.environmentVariable] = String(GroupScoreboard.workerDescriptor)
    }

    /// Spawns the worker of slot `index` from `executablePath` (the running build when nil),
    /// publishing on scoreboard entry `entry`; the child starts with default signal dispositions
    /// and an empty mask.
    func spawn(index: Int, entry: Int, executablePath: String? = nil) throws(SystemCallError) -> pid_t {
        let executablePath = executablePath ?? self.executablePath
        var environment = self.environment
        environment["SWIFT_GATEWAY_WORKER_INDEX"] = String(index)
        environment[GroupScoreboard.entryEnvironmentVariable] = String(entry)
        let argv = self.arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        posix_spawnattr_setsigmask(&attributes, &emptyMask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signalNumber in [SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGPIPE, SIGCHLD] {
            sigaddset(&defaults, signalNumber)
        }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        var fileActions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&fileActions)
        defer { posix_spawn_file_actions_destroy(&fileActions) }
        if let scoreboard = self.scoreboardDescriptor {
            posix_spawn_file_actions_adddup2(&fileActions, scoreboard, GroupScoreboard.workerDescriptor)
        }

        var pid: pid_t = 0
        let result = executablePath.withCString { path in
            posix_spawn(&pid, path, &fileActions, &attributes, argv, envp)
        }
        guard result == 0 else { throw SystemCallError("posix_spawn \(executablePath)", errorNumber: result) }
        return pid
    }
}

/// The running program's executable path (`/proc/self/exe`), falling back to argv[0].
func currentExecutablePath() -> String {
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    if length > 0 {
        return String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
    return CommandLine.arguments.first ?? ""
}
