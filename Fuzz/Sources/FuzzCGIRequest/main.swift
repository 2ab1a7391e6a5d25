import FuzzerDriver

#if canImport(Glibc)
import Glibc
#endif

// libFuzzer runs fuzzCGIRequest(_:_:) on each input (make fuzz; docs/testing.md).
var arguments: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
var count = CommandLine.argc
exit(LLVMFuzzerRunDriver(&count, &arguments) { fuzzCGIRequest($0, $1) })
