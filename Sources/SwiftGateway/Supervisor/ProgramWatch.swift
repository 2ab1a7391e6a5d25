/// Notices, by looking at the files every half second, that the group's program was replaced and
/// has stopped changing (`reload=on`), or that the restart file was touched (`restart-file=`).
///
/// A look is a `stat`: it costs microseconds, needs no inotify watch (which a replaced directory
/// or a symbolic link switched by a deploy tool would escape) and sees every way a build lands —
/// renamed over the old one, copied, written in place by a linker. A build is taken only once
/// its identity has stayed the same for `settleTime`, so a half-written file is never started.
struct ProgramWatch: Sendable {
    enum Event: Equatable, Sendable {
        /// The program file is another build, unchanged for `settleTime`.
        case programChanged(FileIdentity)
        /// The restart file was touched (or appeared).
        case restartFileTouched
    }

    static let pollInterval = 0.5
    static let settleTime = 1.0

    /// Watched for a new build; nil with `reload=off`.
    let programPath: String?
    let restartFile: String?
    /// When the next look is due (monotonic seconds).
    private(set) var nextLookAt: Double
    /// A build seen, and since when it has not changed.
    private var candidate: (identity: FileIdentity, since: Double)?
    /// The build last announced, not announced again.
    private var announced: FileIdentity?
    private var restartFileIdentity: FileIdentity?

    init(programPath: String?, restartFile: String?, now: Double) {
        self.programPath = programPath
        self.restartFile = restartFile
        self.nextLookAt = now + Self.pollInterval
        self.restartFileIdentity = restartFile.flatMap { FileIdentity(path: $0) }
    }

    var isActive: Bool { self.programPath != nil || self.restartFile != nil }

    /// Looks at the files when a look is due. `running` is the build the workers run, `failed`
    /// the last build whose rolling restart failed: neither is announced.
    mutating func look(now: Double, running: FileIdentity?, failed: FileIdentity?) -> [Event] {
        guard self.isActive, now >= self.nextLookAt else { return [] }
        self.nextLookAt = now + Self.pollInterval
        var events: [Event] = []
        if let path = self.restartFile {
            let identity = FileIdentity(path: path)
            if let identity, identity != self.restartFileIdentity { events.append(.restartFileTouched) }
            self.restartFileIdentity = identity
        }
        if let path = self.programPath {
            let identity = FileIdentity(path: path)
            if let identity, identity != running, identity != failed, identity != self.announced {
                if let candidate = self.candidate, candidate.identity == identity {
                    if now - candidate.since >= Self.settleTime {
                        events.append(.programChanged(identity))
                        self.announced = identity
                        self.candidate = nil
                    }
                } else {
                    self.candidate = (identity, now)
                }
            } else {
                self.candidate = nil
            }
        }
        return events
    }
}
