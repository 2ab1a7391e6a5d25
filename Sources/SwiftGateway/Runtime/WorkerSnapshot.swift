/// What the supervisor published on the scoreboard about one worker.
struct WorkerSnapshot: Equatable, Sendable {
    /// 0: no worker holds the entry.
    var pid: Int32
    var state: WorkerState
    var residentBytes: Int
    var cpuMicroseconds: Int64
    /// Why the slot's previous worker exited or was recycled; empty for a slot's first worker.
    var lastExit: String
}
