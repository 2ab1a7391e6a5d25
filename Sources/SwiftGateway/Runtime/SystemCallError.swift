#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A failed system call with its errno, for logs.
struct SystemCallError: Error, CustomStringConvertible {
    var call: String
    var errorNumber: CInt

    init(_ call: String, errorNumber: CInt = errno) {
        self.call = call
        self.errorNumber = errorNumber
    }

    var description: String { "\(call) failed: \(String(cString: strerror(errorNumber))) (errno \(errorNumber))" }
}
