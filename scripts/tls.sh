#!/usr/bin/env bash
# nginx's certificate: installs TLS_CERT_FILE / TLS_KEY_FILE (.env or the
# environment) in $STACKDECK_STATE_DIR/tls after checking them, or, when .env
# names none, generates a self-signed one there (P-256, 365 days, renewed
# when fewer than 30 days are left). Key and certificate 0600, folder 0700;
# the key never goes to the output. nginx is reloaded when the files change.
# Run by scripts/setup.sh; run it again after renewing your certificate.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

need_cmd openssl openssl
dir="$STACKDECK_STATE_DIR/tls"
umask 077
mkdir -p "$dir"
chmod 0700 "$dir"
cert_src="${TLS_CERT_FILE:-$(_env_file_value TLS_CERT_FILE)}"
key_src="${TLS_KEY_FILE:-$(_env_file_value TLS_KEY_FILE)}"
rm -f "$dir/cert.pem.new" "$dir/key.pem.new"

if [ -n "$cert_src$key_src" ]; then
  [ -n "$cert_src" ] && [ -n "$key_src" ] \
    || die "set both TLS_CERT_FILE and TLS_KEY_FILE in .env (or neither: a self-signed certificate is generated)"
  [ -r "$cert_src" ] || die "TLS_CERT_FILE=$cert_src: no such readable file"
  [ -r "$key_src" ] || die "TLS_KEY_FILE=$key_src: no such readable file"
  openssl x509 -in "$cert_src" -noout 2>/dev/null \
    || die "TLS_CERT_FILE=$cert_src is not a PEM certificate"
  cert_pub=$(openssl x509 -in "$cert_src" -noout -pubkey 2>/dev/null)
  key_pub=$(openssl pkey -in "$key_src" -passin pass: -pubout 2>/dev/null) \
    || die "TLS_KEY_FILE=$key_src is not an unencrypted PEM private key (nginx cannot ask for a passphrase)"
  [ "$cert_pub" = "$key_pub" ] \
    || die "TLS_CERT_FILE=$cert_src does not match TLS_KEY_FILE=$key_src (different public keys)"
  openssl x509 -in "$cert_src" -noout -checkend 0 >/dev/null \
    || die "TLS_CERT_FILE=$cert_src expired ($(openssl x509 -in "$cert_src" -noout -enddate)): renew it"
  install -m 0600 "$cert_src" "$dir/cert.pem.new"
  install -m 0600 "$key_src" "$dir/key.pem.new"
  rm -f "$dir/generated"
  what="$cert_src"
elif [ -s "$dir/cert.pem" ] && [ -s "$dir/key.pem" ] && { [ ! -f "$dir/generated" ] \
     || openssl x509 -in "$dir/cert.pem" -noout -checkend $((30 * 86400)) >/dev/null; }; then
  what=""  # the installed one (generated and valid for 30 days more, or the operator's)
else
  host=$(hostname -f 2>/dev/null || hostname)
  log "generating a self-signed certificate for $host, localhost and 127.0.0.1 (365 days) in $dir"
  if ! out=$(openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 365 \
       -subj "/CN=$host" -addext "subjectAltName=DNS:$host,DNS:localhost,IP:127.0.0.1" \
       -keyout "$dir/key.pem.new" -out "$dir/cert.pem.new" 2>&1); then
    rm -f "$dir/cert.pem.new" "$dir/key.pem.new"
    die "openssl could not generate the certificate: $(printf '%s' "$out" | tail -n 3)"
  fi
  chmod 0600 "$dir/cert.pem.new" "$dir/key.pem.new"
  echo "self-signed by scripts/tls.sh; replaced at the next run when < 30 days are left" > "$dir/generated"
  what="self-signed"
fi

changed=0
if [ -n "$what" ]; then
  if cmp -s "$dir/cert.pem.new" "$dir/cert.pem" 2>/dev/null && cmp -s "$dir/key.pem.new" "$dir/key.pem" 2>/dev/null; then
    rm -f "$dir/cert.pem.new" "$dir/key.pem.new"
  else
    mv "$dir/key.pem.new" "$dir/key.pem"
    mv "$dir/cert.pem.new" "$dir/cert.pem"
    changed=1
  fi
fi
log "certificate $dir/cert.pem: $(openssl x509 -in "$dir/cert.pem" -noout -subject -enddate | tr '\n' ' ')"

nginx=$(container_of nginx)
if [ "$changed" = 1 ] && [ "$(docker inspect -f '{{.State.Running}}' "$nginx" 2>/dev/null)" = true ]; then
  if docker exec "$nginx" nginx -t -q && docker exec "$nginx" nginx -s reload; then
    log "nginx reloaded with the new certificate"
  else
    log "warning: $nginx was not reloaded (output above): it serves the new certificate once recreated (scripts/setup.sh)"
  fi
fi
