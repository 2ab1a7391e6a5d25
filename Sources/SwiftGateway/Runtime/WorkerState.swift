/// What the supervisor says a worker is doing, on the scoreboard; the raw values are those of
/// `enum sg_worker_state` in `sg_scoreboard.h` (a unit test checks).
enum WorkerState: Int32, Sendable, Equatable {
    case empty = 0
    /// Spawned, not accepting yet.
    case starting = 1
    /// Accepting requests.
    case ready = 2
    /// Recycled: finishing its requests while its replacement runs.
    case draining = 3
}
