if [ "${1:-}" = "--self-test" ]; then log "client self-test ok"; exit 0; fi
log "client: would connect to ${SERVER:-127.0.0.1:8080}"
