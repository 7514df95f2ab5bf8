if [ "${1:-}" = "--self-test" ]; then log "server self-test ok"; exit 0; fi
log "server: listening on port ${2:-8080} ($(cat /etc/build-info))"
