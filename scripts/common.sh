# Shell functions shared by the benchmark scripts (sourced, not run).

# A port free for both TCP and UDP on 127.0.0.1.
free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 40000))
        if ! ss -Htuan "( sport = :$p )" | grep -q .; then
            echo "$p"
            return
        fi
    done
}

wait_tcp() {
    for _ in $(seq 1 500); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.01
    done
    echo "port $1 never opened" >&2
    return 1
}
