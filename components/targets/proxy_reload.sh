# Deliver a new nginx.conf (on stdin) to the running proxy container $NETOPT_PROXY (the gateway or a service proxy)
# and load it gracefully. Run by the proxy's pulumi-command Command on the machine running `pulumi up`, against the
# same Docker host as the docker provider (DOCKER_HOST). nginx -t checks the candidate inside the proxy, with its
# own binary, modules and user; only a config it accepts replaces the live one. A refused config leaves the running
# proxy untouched and fails the update with nginx's message.
set -eu
gw="$NETOPT_PROXY"
next=/tmp/netopt-nginx.conf.next
live=/etc/nginx/nginx.conf
docker exec -i "$gw" sh -c "cat > $next"
if ! out=$(docker exec "$gw" nginx -t -q -c "$next" 2>&1); then
  printf '%s\n' "$out" >&2
  echo "netopt: nginx -t refused the new config of $gw; it keeps serving the previous one" >&2
  docker exec "$gw" rm -f "$next"
  exit 1
fi
if docker exec "$gw" cmp -s "$next" "$live"; then  # the config the container was created with: nothing to load
  docker exec "$gw" rm -f "$next"
  exit 0
fi
# The uploaded file belongs to root, so root (without capabilities) rewrites it; nginx, running as the proxy's
# user, is signalled by that user. nginx is PID 1: a reload forks new workers and lets the old ones finish
# their requests. The update returns once a new worker runs, i.e. once the new config serves new connections.
docker exec -u 0 "$gw" sh -c "cp $live /tmp/netopt-nginx.conf.prev && cat $next > $live && rm -f $next"
docker exec "$gw" sh -c '
workers() { for s in /proc/[0-9]*/stat; do read -r pid comm state ppid rest < "$s" 2>/dev/null && [ "$ppid" = 1 ] && echo "$pid"; done; true; }
old=" $(workers | tr "\n" " ")"
kill -HUP 1
i=0
while [ $i -lt 100 ]; do
  for pid in $(workers); do case "$old" in *" $pid "*) ;; *) exit 0 ;; esac; done
  i=$((i + 1)); sleep 0.1
done
echo "netopt: $gw did not start workers with the new config within 10 s" >&2
exit 1' || {
  docker exec -u 0 "$gw" sh -c "cat /tmp/netopt-nginx.conf.prev > $live"
  docker logs --tail 5 "$gw" >&2
  exit 1
}
