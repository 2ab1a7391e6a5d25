import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The worker's `threads=N` request slots, and its open connections from Apache.
///
/// A request holds a slot while its application runs. The accept thread takes a new connection
/// only while a slot is free and fewer than `connectionCapacity` are open, so while every slot
/// runs the kernel hands new connections to a sibling. A request that arrives on a kept-alive
/// connection while every slot runs is turned away when a sibling has a free slot (Apache sends
/// it again on a new connection) and queued for the next free slot otherwise: at saturation
/// requests wait here, on their kept connections, instead of in the backlog behind a connection
/// closed and opened for each. Kept-alive connections between requests are listed oldest first,
/// so the accept thread can reclaim one when the connections are all open.
///
/// Each running request holds one numbered slot (0..<capacity), its cell on the group's
/// scoreboard: the supervisor reads there when each request started, and names the one it gives
/// up on by its slot (`isCancelled`). A request that finishes hands its slot, number and all, to
/// the queued request it starts.
final class ConnectionSlots: @unchecked Sendable {
    /// A kept-alive connection between two requests.
    struct IdleConnection {
        let id: Int
        let channel: any Channel
    }

    /// What becomes of a request that arrived.
    enum Admission: Equatable {
        /// It has slot `slot`: run it.
        case start(slot: Int)
        /// Every slot runs and no sibling has room: it runs when `start` is called with its slot.
        case queued
        /// Every slot runs and a sibling has room: say `FCGI_OVERLOADED`, Apache sends it there.
        case turnAway
    }

    /// What happened to a slot, for the scoreboard (the supervisor counts requests from it).
    enum RequestEvent: Equatable, Sendable {
        /// A request took a free slot.
        case started
        /// A request gave its slot back.
        case finished
        /// A request ended and handed its slot to a queued one, which starts.
        case handedOver
    }

    private struct QueuedRequest {
        let connectionID: Int
        let channel: any Channel
        let mayTurnAway: Bool
        let start: @Sendable (_ slot: Int) -> Void
        let turnAway: @Sendable () -> Void
    }

    let capacity: Int
    /// Open connections at most; a connection waiting beyond them reclaims an idle one.
    let connectionCapacity: Int
    /// Whether a connection waits in the group socket's backlog; nil when there is no backlog to watch.
    private let connectionsWaiting: (@Sendable () -> Bool)?
    /// Free slots of the sibling workers together; nil when there are none.
    private let siblingRoom: (@Sendable () -> Int)?
    /// Tells the siblings this worker's free slots.
    private let publishRoom: (@Sendable (Int) -> Void)?
    /// Tells the supervisor each request's start and end: the event, the request's slot, and the
    /// requests holding a slot after it. Called under the lock, so a slot's record and its owner
    /// change together.
    private let recordRequest: (@Sendable (_ event: RequestEvent, _ slot: Int, _ inFlight: Int) -> Void)?
    /// Whether the supervisor gave up on the request holding a slot (read under the lock).
    private let isCancelled: (@Sendable (_ slot: Int) -> Bool)?
    /// Tells the supervisor that the request holding a slot was given up on, as it asked: its
    /// connection's event loop acted (a loop that never does is blocked, and the worker killed).
    private let acknowledgeCancel: (@Sendable (_ slot: Int) -> Void)?

    /// How often queued requests look for a sibling with room.
    static let queueWatchInterval = TimeAmount.milliseconds(1)

    // Everything below is guarded by `mutex`; `condition` is signalled when a slot or an idle
    // connection appears.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var held = 0
    private var running = 0
    /// The numbers of the free slots, a stack (its storage reserved once: taking and giving back
    /// a slot allocates nothing).
    private var freeSlots: [Int]
    /// The connection of the request holding each slot, nil while the slot is free.
    private var owners: [(any Channel)?]
    /// The slots whose requests were given up on (answered or aborted, their connections
    /// closing) while their applications still run, and how many.
    private var abandoned: [Bool]
    private var abandonedRequests = 0
    private var idle: [IdleConnection] = []
    private var queue: [QueuedRequest] = []
    private var watchingQueue = false
    private var draining = false
    private var lastConnectionID = 0

    init(
        capacity: Int,
        connectionCapacity: Int? = nil,
        connectionsWaiting: (@Sendable () -> Bool)? = nil,
        siblingRoom: (@Sendable () -> Int)? = nil,
        publishRoom: (@Sendable (Int) -> Void)? = nil,
        recordRequest: (@Sendable (_ event: RequestEvent, _ slot: Int, _ inFlight: Int) -> Void)? = nil,
        isCancelled: (@Sendable (_ slot: Int) -> Bool)? = nil,
        acknowledgeCancel: (@Sendable (_ slot: Int) -> Void)? = nil
    ) {
        self.capacity = capacity
        // Slot 0 on top: a lightly loaded worker keeps using the first cells.
        self.freeSlots = Array((0..<capacity).reversed())
        self.owners = Array(repeating: nil, count: capacity)
        self.abandoned = Array(repeating: false, count: capacity)
        self.connectionCapacity = connectionCapacity ?? capacity
        self.connectionsWaiting = connectionsWaiting
        self.siblingRoom = siblingRoom
        self.publishRoom = publishRoom
        self.recordRequest = recordRequest
        self.isCancelled = isCancelled
        self.acknowledgeCancel = acknowledgeCancel
        pthread_mutex_init(self.mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(self.condition, &attributes)
        pthread_condattr_destroy(&attributes)
        publishRoom?(capacity)
    }

    deinit {
        pthread_cond_destroy(self.condition)
        pthread_mutex_destroy(self.mutex)
        self.condition.deallocate()
        self.mutex.deallocate()
    }

    private func locked<Result>(_ body: () -> Result) -> Result {
        pthread_mutex_lock(self.mutex)
        defer { pthread_mutex_unlock(self.mutex) }
        return body()
    }

    private func lockedAndSignalled<Result>(_ body: () -> Result) -> Result {
        self.locked {
            defer { pthread_cond_broadcast(self.condition) }
            return body()
        }
    }

    /// Under the lock: the free slots, as the siblings should see them.
    private func publishRoomLocked() {
        self.publishRoom?(self.draining ? 0 : self.capacity - self.running)
    }

    // MARK: Accepting

    /// Under the lock: a slot is free and a connection may be opened (also by reclaiming an idle
    /// one when `orIdle`).
    private func hasRoom(orIdle: Bool) -> Bool {
        self.running < self.capacity && (self.held < self.connectionCapacity || (orIdle && !self.idle.isEmpty))
    }

    /// Waits at most `timeout` seconds for a free slot and room for a connection, or also a
    /// reclaimable idle connection when `orIdle`; true when there is.
    func waitForRoom(orIdle: Bool, timeout: Double) -> Bool {
        var deadline = timespec()
        clock_gettime(CLOCK_MONOTONIC, &deadline)
        let nanoseconds = Int(deadline.tv_nsec) + Int(timeout * 1_000_000_000)
        deadline.tv_sec += nanoseconds / 1_000_000_000
        deadline.tv_nsec = nanoseconds % 1_000_000_000
        return self.locked {
            while true {
                if self.hasRoom(orIdle: orIdle) { return true }
                if pthread_cond_timedwait(self.condition, self.mutex, &deadline) == ETIMEDOUT {
                    return self.hasRoom(orIdle: orIdle)
                }
            }
        }
    }

    /// Counts a new connection in; false when no slot is free or the connections are all open.
    func tryTake() -> Bool {
        self.locked {
            guard self.hasRoom(orIdle: false) else { return false }
            self.held += 1
            return true
        }
    }

    /// Counts in a connection to the worker's own socket (`affinity-cookie=`): taken while
    /// every slot runs, as its requests wait for this worker rather than go to a sibling.
    func takeRouted() {
        self.locked { self.held += 1 }
    }

    /// Whether `connectionCapacity` connections are open.
    var connectionsAreAllOpen: Bool { self.locked { self.held >= self.connectionCapacity } }

    /// Counts out a connection that is closed and whose application has returned.
    func release() {
        self.lockedAndSignalled { self.held -= 1 }
    }

    /// Removes the idle connection kept the longest, for the caller to reclaim.
    func takeOldestIdle() -> (any Channel)? {
        self.locked { self.idle.isEmpty ? nil : self.idle.removeFirst().channel }
    }

    // MARK: Connections

    /// A number that names one connection in this list.
    func makeConnectionID() -> Int {
        self.locked {
            self.lastConnectionID += 1
            return self.lastConnectionID
        }
    }

    /// Whether a connection that asked to be kept should stay open after the response now
    /// ending: not while draining, nor while the connections are all open and another waits in
    /// the backlog (which would otherwise wait until Apache leaves an idle connection alone long
    /// enough for the accept thread to reclaim it).
    func shouldKeepFinishedConnection() -> Bool {
        let (full, draining) = self.locked { (self.held >= self.connectionCapacity, self.draining) }
        if draining { return false }
        if full, let connectionsWaiting, connectionsWaiting() { return false }
        return true
    }

    /// A kept-alive connection finished a request; false when the worker began draining since,
    /// and the connection should be closed instead.
    func connectionBecameIdle(id: Int, channel: any Channel) -> Bool {
        self.lockedAndSignalled {
            guard !self.draining else { return false }
            self.idle.append(IdleConnection(id: id, channel: channel))
            return true
        }
    }

    /// A request arrived on the connection, or it closed: it is no longer idle.
    func connectionLeftIdle(id: Int) {
        self.locked { self.idle.removeAll { $0.id == id } }
    }

    // MARK: Requests

    /// Takes a free slot for a request that arrived on `channel` and returns its number; nil when
    /// every slot runs, and the caller asks `admit` (which needs the closures only then).
    func tryStartRequest(on channel: any Channel) -> Int? {
        self.locked { self.startIfFreeLocked(on: channel) }
    }

    /// Under the lock: takes a free slot, if any.
    private func startIfFreeLocked(on channel: any Channel) -> Int? {
        guard let slot = self.freeSlots.popLast() else { return nil }
        self.running += 1
        self.owners[slot] = channel
        self.publishRoomLocked()
        self.recordRequest?(.started, slot, self.running)
        return slot
    }

    /// Decides about a request that arrived on connection `connectionID` (`channel`).
    /// `mayTurnAway`: Apache would send it again (it came on a kept connection). A queued request
    /// is later either started (`start`, with the slot it took over) or turned away (`turnAway`,
    /// when a sibling has room).
    func admit(
        connectionID: Int, channel: any Channel, mayTurnAway: Bool,
        start: @escaping @Sendable (_ slot: Int) -> Void, turnAway: @escaping @Sendable () -> Void
    ) -> Admission {
        self.locked {
            if let slot = self.startIfFreeLocked(on: channel) { return .start(slot: slot) }
            if mayTurnAway, let siblingRoom = self.siblingRoom, siblingRoom() > 0 {
                return .turnAway
            }
            self.queue.append(
                QueuedRequest(
                    connectionID: connectionID, channel: channel, mayTurnAway: mayTurnAway, start: start,
                    turnAway: turnAway))
            return .queued
        }
    }

    /// A queued request's connection closed: it no longer waits.
    func cancelQueued(connectionID: Int) {
        self.locked { self.queue.removeAll { $0.connectionID == connectionID } }
    }

    /// An application returned (or a started request found its connection gone): its slot goes
    /// to the oldest queued request, else it is free. A connection waiting in the backlog goes
    /// first (the slot is freed for the accept thread), so that at saturation a request without a
    /// kept connection does not wait until the queue runs dry.
    func requestFinished(slot: Int) {
        // Nothing queued (the usual case): one lock, no look at the backlog.
        let freed: Bool = self.lockedAndSignalled {
            guard self.queue.isEmpty else { return false }
            self.freeSlotLocked(slot)
            return true
        }
        if freed { return }
        let backlogFirst = self.connectionsWaiting?() == true
        let next: QueuedRequest? = self.lockedAndSignalled {
            if !self.queue.isEmpty, !backlogFirst {
                let next = self.queue.removeFirst()
                self.owners[slot] = next.channel
                self.forgetAbandonedLocked(slot)
                self.recordRequest?(.handedOver, slot, self.running)
                return next
            }
            self.freeSlotLocked(slot)
            return nil
        }
        next?.start(slot)
    }

    /// Under the lock: gives slot `slot` back.
    private func freeSlotLocked(_ slot: Int) {
        self.running -= 1
        self.owners[slot] = nil
        self.forgetAbandonedLocked(slot)
        self.freeSlots.append(slot)
        self.publishRoomLocked()
        self.recordRequest?(.finished, slot, self.running)
    }

    /// Under the lock: the request in `slot` ended; it is no longer an abandoned one.
    private func forgetAbandonedLocked(_ slot: Int) {
        if self.abandoned[slot] {
            self.abandoned[slot] = false
            self.abandonedRequests -= 1
        }
    }

    /// The request holding `slot` was given up on and its connection is closing: a drain need
    /// not wait for its application, which holds the slot (and the connection's count) until
    /// it returns, if ever.
    func requestAbandoned(slot: Int) {
        self.locked {
            guard self.owners.indices.contains(slot), self.owners[slot] != nil, !self.abandoned[slot] else { return }
            self.abandoned[slot] = true
            self.abandonedRequests += 1
        }
    }

    /// The running requests the supervisor gave up on (`isCancelled`), by slot, with their
    /// connections: their handlers stop them. A slot stays held until its application returns.
    func cancelledRequests() -> [(slot: Int, channel: any Channel)] {
        guard let isCancelled = self.isCancelled else { return [] }
        return self.locked {
            var cancelled: [(slot: Int, channel: any Channel)] = []
            for (slot, owner) in self.owners.enumerated() {
                if let owner, isCancelled(slot) { cancelled.append((slot, owner)) }
            }
            return cancelled
        }
    }

    /// Whether the supervisor gave up on the request holding `slot` now; if so, says that it is
    /// acted on (from then on the slot is no longer named by `cancelledRequests`). The caller
    /// knows that its own request holds the slot (its application has not returned): then it is
    /// that request.
    func acknowledgeCancel(slot: Int) -> Bool {
        guard let isCancelled = self.isCancelled else { return false }
        return self.locked {
            guard self.owners.indices.contains(slot), self.owners[slot] != nil, isCancelled(slot) else { return false }
            self.acknowledgeCancel?(slot)
            return true
        }
    }

    /// Requests waiting for a slot.
    var queuedCount: Int { self.locked { self.queue.count } }

    /// Looks every `queueWatchInterval` on `eventLoop`, while requests are queued, for siblings
    /// with room, and turns away as many queued requests (of those Apache would send again) as
    /// they have room for: a worker whose applications hang keeps no request a sibling could serve.
    func watchQueue(on eventLoop: any EventLoop) {
        guard self.siblingRoom != nil else { return }
        let begin: Bool = self.locked {
            guard !self.watchingQueue, !self.queue.isEmpty else { return false }
            self.watchingQueue = true
            return true
        }
        if begin { self.scheduleQueueWatch(on: eventLoop) }
    }

    private func scheduleQueueWatch(on eventLoop: any EventLoop) {
        eventLoop.scheduleTask(in: Self.queueWatchInterval) {
            let room = self.siblingRoom?() ?? 0
            let (turnedAway, keepWatching): ([QueuedRequest], Bool) = self.locked {
                var turnedAway: [QueuedRequest] = []
                if room > 0 {
                    var remaining: [QueuedRequest] = []
                    for request in self.queue {
                        if request.mayTurnAway, turnedAway.count < room {
                            turnedAway.append(request)
                        } else {
                            remaining.append(request)
                        }
                    }
                    self.queue = remaining
                }
                self.watchingQueue = !self.queue.isEmpty
                return (turnedAway, self.watchingQueue)
            }
            for request in turnedAway { request.turnAway() }
            if keepWatching { self.scheduleQueueWatch(on: eventLoop) }
        }
    }

    /// Requests holding a slot now (their applications running, or about to).
    var runningCount: Int { self.locked { self.running } }

    /// Open connections, and connections whose application has not returned yet.
    var heldCount: Int { self.locked { self.held } }

    /// Requests given up on whose applications still run (each holds a slot and a connection).
    var abandonedCount: Int { self.locked { self.abandonedRequests } }

    /// What a drain waits for: connections open or with an application running, but those of
    /// abandoned requests, which a drain cannot end.
    var heldCountToDrain: Int { self.locked { self.held - self.abandonedRequests } }

    // MARK: Draining

    /// From now on no connection stays idle; returns those idle now, for the caller to reclaim.
    func beginDraining() -> [any Channel] {
        self.locked {
            self.draining = true
            self.publishRoomLocked()
            defer { self.idle.removeAll() }
            return self.idle.map(\.channel)
        }
    }

    var isDraining: Bool { self.locked { self.draining } }
}
