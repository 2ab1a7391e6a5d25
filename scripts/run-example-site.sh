#!/usr/bin/env bash
# Starts a real Apache on 127.0.0.1:8080 serving the example site; Ctrl-C stops everything.
set -euo pipefail
module=$1
program=$2
port=${PORT:-8080}
here=$(cd "$(dirname "$0")/.." && pwd)

# Apache's children and the groups run as www-data: everything they read must be reachable.
root=$(mktemp -d /tmp/swift-gateway-example.XXXXXX)
chmod 755 "$root"
mkdir -p "$root/bin" "$root/run"
install -m 755 "$program" "$root/bin/ExampleSite"
install -m 644 "$module" "$root/mod_swift_gateway.so"
sed -e "s|@ROOT@|$root|g" -e "s|@PORT@|$port|g" \
    -e "s|@MODULE@|$root/mod_swift_gateway.so|g" -e "s|@PROGRAM@|$root/bin/ExampleSite|g" \
    "$here/conf/example-site.conf.in" > "$root/httpd.conf"

/usr/sbin/apache2 -d "$root" -f "$root/httpd.conf" -t
stop() {
    echo "stopping Apache"
    /usr/sbin/apache2 -d "$root" -f "$root/httpd.conf" -k stop 2>/dev/null || true
    for _ in $(seq 100); do
        [ -f "$root/httpd.pid" ] && kill -0 "$(cat "$root/httpd.pid")" 2>/dev/null || break
        sleep 0.1
    done
    exit 0
}
trap stop INT TERM
/usr/sbin/apache2 -d "$root" -f "$root/httpd.conf" -k start

cat <<MSG

SwiftGateway example site (Apache pid $(cat "$root/httpd.pid" 2>/dev/null || echo '?')):
  http://127.0.0.1:$port/            group site (processes=3)
  http://127.0.0.1:$port/admin/      group site-admin (processes=1)
  http://127.0.0.1:$port/gateway-status   the status page (?json, ?auto, ?refresh=5)
  http://127.0.0.1:$port/hello       plain text;  /json a Codable value as JSON
  http://127.0.0.1:$port/stream      a body written line by line
  curl --data-binary @FILE http://127.0.0.1:$port/body   reads the request body;  /log logs a line
Error log: $root/error.log   (Ctrl-C stops Apache and every process it started)

MSG
tail -n +1 -f "$root/error.log" &
tail_pid=$!
trap 'kill $tail_pid 2>/dev/null; stop' INT TERM
wait $tail_pid
