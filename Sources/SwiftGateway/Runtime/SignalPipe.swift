#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CSwiftGatewayLinux

/// Turns signals into bytes on a pipe (the self-pipe trick), so a `poll` loop can wait for
/// signals, child exits and timeouts at once without doing work inside a signal handler.
enum SignalPipe {
    /// Set once before any handler is installed, read only by the handler afterwards.
    nonisolated(unsafe) private static var writeDescriptor: CInt = -1
    nonisolated(unsafe) private static var readDescriptor: CInt = -1

    /// The read end; each byte read is a signal number.
    static var descriptor: CInt { readDescriptor }

    /// Creates the pipe (close-on-exec, non-blocking) and routes `signals` into it.
    static func install(_ signals: [CInt]) throws(SystemCallError) {
        if writeDescriptor < 0 {
            var fds: [CInt] = [-1, -1]
            guard sg_pipe_cloexec_nonblock(&fds) == 0 else { throw SystemCallError("pipe2") }
            readDescriptor = fds[0]
            writeDescriptor = fds[1]
        }
        for signalNumber in signals {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { signalNumber in
                let saved = errno
                var byte = UInt8(truncatingIfNeeded: signalNumber)
                _ = write(SignalPipe.writeDescriptor, &byte, 1)
                errno = saved
            }
            sigemptyset(&action.sa_mask)
            action.sa_flags = SA_RESTART
            guard sigaction(signalNumber, &action, nil) == 0 else { throw SystemCallError("sigaction") }
        }
    }

    /// Reads every pending signal number without blocking.
    static func drain() -> [CInt] {
        var received: [CInt] = []
        var buffer = [UInt8](repeating: 0, count: 64)
        while true {
            let count = read(readDescriptor, &buffer, buffer.count)
            if count <= 0 { break }
            received.append(contentsOf: buffer[0..<count].map { CInt($0) })
        }
        return received
    }
}
