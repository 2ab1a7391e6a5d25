import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The worker's `threads=N` request slots, one per open connection from Apache.
///
/// A connection holds its slot from accept until it is closed and its application has returned,
/// so a request sent on an open connection always runs at once, and a worker whose slots are all
/// held accepts nothing: new connections wait in the kernel backlog for a sibling. Kept-alive
/// connections between requests are listed oldest first, so the accept thread can reclaim one
/// for a connection waiting in the backlog.
final class ConnectionSlots: @unchecked Sendable {
    /// A kept-alive connection between two requests.
    struct IdleConnection {
        let id: Int
        let channel: any Channel
    }

    let capacity: Int
    /// Whether a connection waits in the group socket's backlog; nil when there is no backlog to watch.
    private let connectionsWaiting: (@Sendable () -> Bool)?

    // Everything below is guarded by `mutex`; `condition` is signalled when a slot or an idle
    // connection appears.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var held = 0
    private var running = 0
    private var idle: [IdleConnection] = []
    private var draining = false
    private var lastConnectionID = 0

    init(capacity: Int, connectionsWaiting: (@Sendable () -> Bool)? = nil) {
        self.capacity = capacity
        self.connectionsWaiting = connectionsWaiting
        pthread_mutex_init(self.mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(self.condition, &attributes)
        pthread_condattr_destroy(&attributes)
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

    // MARK: Accepting

    /// Waits at most `timeout` seconds for a free slot, or also for a reclaimable idle connection
    /// when `orIdle`; true when there is one.
    func waitForRoom(orIdle: Bool, timeout: Double) -> Bool {
        var deadline = timespec()
        clock_gettime(CLOCK_MONOTONIC, &deadline)
        let nanoseconds = Int(deadline.tv_nsec) + Int(timeout * 1_000_000_000)
        deadline.tv_sec += nanoseconds / 1_000_000_000
        deadline.tv_nsec = nanoseconds % 1_000_000_000
        return self.locked {
            while true {
                if self.held < self.capacity || (orIdle && !self.idle.isEmpty) { return true }
                if pthread_cond_timedwait(self.condition, self.mutex, &deadline) == ETIMEDOUT {
                    return self.held < self.capacity || (orIdle && !self.idle.isEmpty)
                }
            }
        }
    }

    /// Takes a free slot for a new connection; false when all are held.
    func tryTake() -> Bool {
        self.locked {
            guard self.held < self.capacity else { return false }
            self.held += 1
            return true
        }
    }

    /// Gives back the slot of a connection that is closed and whose application has returned.
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
    /// ending: not while draining, nor while every slot is held and another connection waits in
    /// the backlog (which would otherwise wait until Apache leaves an idle connection alone long
    /// enough for the accept thread to reclaim it).
    func shouldKeepFinishedConnection() -> Bool {
        let (full, draining) = self.locked { (self.held >= self.capacity, self.draining) }
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

    func requestStarted() { self.locked { self.running += 1 } }

    func requestFinished() { self.locked { self.running -= 1 } }

    /// Applications running now.
    var runningCount: Int { self.locked { self.running } }

    /// Slots held by open connections or by applications still running.
    var heldCount: Int { self.locked { self.held } }

    // MARK: Draining

    /// From now on no connection stays idle; returns those idle now, for the caller to reclaim.
    func beginDraining() -> [any Channel] {
        self.locked {
            self.draining = true
            defer { self.idle.removeAll() }
            return self.idle.map(\.channel)
        }
    }

    var isDraining: Bool { self.locked { self.draining } }
}

/// Asks a connection's handler to close it if it is idle, saying so first with an unsolicited
/// `FCGI_END_REQUEST` (`FCGI_OVERLOADED`): a web server that already sent its next request on it
/// then knows that request was not run and may send it again elsewhere.
struct ReclaimIdleConnection: Sendable {}
