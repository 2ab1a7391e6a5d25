import CSwiftGatewayLinux

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
    /// `cpu-time-limit` and `virtual-memory-limit`, set in the child before it executes the
    /// program: no worker ever runs, nor shows in /proc as one, without them.
    private(set) var resourceLimits = sg_spawn_limits(cpu_soft_seconds: 0, cpu_hard_seconds: 0, address_space_bytes: 0)

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

    /// Workers spawned from now on start with RLIMIT_CPU `cpuSeconds` (soft) and `cpuSeconds +
    /// hardGrace` (hard), and RLIMIT_AS `addressSpaceBytes`; 0: no such limit.
    mutating func limitResources(cpuSeconds: UInt64, hardGrace: UInt64, addressSpaceBytes: UInt64) {
        self.resourceLimits = sg_spawn_limits(
            cpu_soft_seconds: cpuSeconds, cpu_hard_seconds: cpuSeconds > 0 ? cpuSeconds + hardGrace : 0,
            address_space_bytes: addressSpaceBytes)
    }

    /// Spawns the worker of slot `index` from `executablePath` (the running build when nil),
    /// publishing on scoreboard entry `entry`; the child starts with its resource limits, default
    /// signal dispositions (but SIGXCPU's, ignored: see `Supervisor.run`) and an empty mask.
    func spawn(index: Int, entry: Int, executablePath: String? = nil) throws(SystemCallError) -> SpawnedWorker {
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

        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signalNumber in [SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGPIPE, SIGCHLD] {
            sigaddset(&defaults, signalNumber)
        }
        var limits = self.resourceLimits
        var limitErrors = sg_spawn_limit_errors()
        var pid: pid_t = 0
        let result = executablePath.withCString { path in
            sg_spawn_worker(
                &pid, path, argv, envp, self.scoreboardDescriptor ?? -1, GroupScoreboard.workerDescriptor, &defaults,
                &limits, &limitErrors)
        }
        guard result == 0 else { throw SystemCallError("spawn \(executablePath)", errorNumber: result) }
        var unappliedLimits: [(limit: String, error: SystemCallError)] = []
        if limitErrors.cpu != 0 {
            unappliedLimits.append(("cpu-time-limit", SystemCallError("setrlimit", errorNumber: limitErrors.cpu)))
        }
        if limitErrors.address_space != 0 {
            unappliedLimits.append(
                ("virtual-memory-limit", SystemCallError("setrlimit", errorNumber: limitErrors.address_space)))
        }
        return SpawnedWorker(pid: pid, unappliedLimits: unappliedLimits)
    }
}

/// A worker that runs, and the resource limits its child could not set before it executed the
/// program (the worker runs without them).
struct SpawnedWorker {
    var pid: pid_t
    var unappliedLimits: [(limit: String, error: SystemCallError)]
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
