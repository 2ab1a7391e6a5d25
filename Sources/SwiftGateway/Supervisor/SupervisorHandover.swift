#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The two pipes by which one supervisor of a group hands the group to the next when Apache
/// restarts with a changed configuration, on the same listening socket.
///
/// Apache's parent gives every supervisor the read end of a pipe (`SWIFT_GATEWAY_RETIRE_FD`) and
/// keeps the write end. A successor gets a copy of that write end of its predecessor
/// (`SWIFT_GATEWAY_PREDECESSOR_FD`) and writes to it once its own workers accept: the predecessor
/// sees the pipe readable, drains its workers and exits. A successor that dies first has told
/// nothing: the parent still holds the write end, the predecessor keeps serving, and the parent
/// hands the pipe to the successor it restarts. The pipe ending (the parent gone) retires too.
struct SupervisorHandover {
    /// Readable (a byte, or the end of the pipe): time to retire.
    private(set) var retireDescriptor: CInt?
    /// Written and closed once this supervisor's workers accept; nil when there is no predecessor
    /// or it was told already.
    private var predecessorDescriptor: CInt?

    static let retireVariable = "SWIFT_GATEWAY_RETIRE_FD"
    static let predecessorVariable = "SWIFT_GATEWAY_PREDECESSOR_FD"

    /// Takes the descriptors the environment names; both become close-on-exec, so no worker
    /// holds them.
    init(environment: [String: String]) {
        self.retireDescriptor = Self.descriptor(environment[Self.retireVariable])
        self.predecessorDescriptor = Self.descriptor(environment[Self.predecessorVariable])
    }

    private static func descriptor(_ text: String?) -> CInt? {
        guard let text, let number = CInt(text), number > 2, fcntl(number, F_SETFD, FD_CLOEXEC) == 0 else {
            return nil
        }
        return number
    }

    /// Whether the retire pipe is readable now.
    var isRetireRequested: Bool {
        guard let descriptor = self.retireDescriptor else { return false }
        var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        return poll(&entry, 1, 0) > 0 && entry.revents != 0
    }

    /// Whether this supervisor still has a predecessor to tell.
    var hasPredecessor: Bool { self.predecessorDescriptor != nil }

    /// Tells the predecessor (once) that this supervisor's workers accept: it retires.
    mutating func announceReady() {
        guard let descriptor = self.predecessorDescriptor else { return }
        var byte: UInt8 = 1
        _ = write(descriptor, &byte, 1)
        close(descriptor)
        self.predecessorDescriptor = nil
    }
}
