/// What the supervisor counted for its group on the scoreboard's header.
struct GroupCounters: Equatable, Sendable {
    /// The supervisor that took the board; 0: none yet.
    var supervisorPID: Int32
    /// Requests served by the group's workers that are gone.
    var requestsServedByGone: Int64
    var recycles: [RecycleCounter: Int64] = [:]
    var restarts: [RestartCounter: Int64] = [:]
}
