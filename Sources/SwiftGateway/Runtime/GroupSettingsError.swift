/// A `SWIFT_GATEWAY_*` variable that does not hold what it must.
struct GroupSettingsError: Error, CustomStringConvertible {
    var variable: String
    var value: String
    var description: String { "invalid value '\(value)' for \(variable)" }
}
