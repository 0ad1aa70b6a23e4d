#!/bin/sh
# Test certificates for tests/check_net.c, in DIR:
#   ca.pem        the CA that signed server.crt (the daemon's sslrootcert=)
#   server.crt/.key   for "localhost" and 127.0.0.1, valid for a day
#   other-ca.pem  a CA that signed nothing here (must be refused)
#   tests/mkcerts.sh DIR
set -eu
d=$1
mkdir -p "$d"
cd "$d"
ossl() { openssl "$@" 2>>openssl.log; }
ossl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=pgjobd test CA" \
    -keyout ca.key -out ca.pem
ossl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=pgjobd other CA" \
    -keyout other-ca.key -out other-ca.pem
ossl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key -out server.csr
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >san.ext
ossl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 \
    -extfile san.ext -out server.crt
