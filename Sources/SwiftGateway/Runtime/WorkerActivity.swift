/// What a worker published on the group's scoreboard about its requests, as the supervisor
/// reads it. Times are `CLOCK_MONOTONIC` nanoseconds.
struct WorkerActivity: Equatable, Sendable {
    /// Requests finished since the worker started.
    var requestsServed: Int
    /// Requests holding a slot now.
    var inFlight: Int
    /// When the last request started; 0: none yet.
    var lastRequestStart: Int64
    /// Request slots free now (0 while every one runs, or while it starts or drains).
    var room: Int
    /// When the worker began accepting; 0: not yet (it is still starting).
    var acceptingSince: Int64
    /// Requests waiting for a slot inside the worker.
    var queued: Int
    /// Requests that arrived with an affinity route.
    var routedRequests: Int

    init(
        requestsServed: Int = 0, inFlight: Int = 0, lastRequestStart: Int64 = 0, room: Int = 0,
        acceptingSince: Int64 = 0, queued: Int = 0, routedRequests: Int = 0
    ) {
        self.requestsServed = requestsServed
        self.inFlight = inFlight
        self.lastRequestStart = lastRequestStart
        self.room = room
        self.acceptingSince = acceptingSince
        self.queued = queued
        self.routedRequests = routedRequests
    }

    var isAccepting: Bool { self.acceptingSince != 0 }
}
