#!/bin/sh
# tls_certs.sh DIR: throwaway key material for the TLS distribution tests,
# made at run time with the openssl command (none is kept in the repo).
#
#   DIR/ca.pem            a CA
#   DIR/node.pem, .key    a node certificate it signed, for localhost and
#                         127.0.0.1 (server and client use)
#   DIR/rogue_ca.pem      another CA, trusted by nobody
#   DIR/rogue.pem, .key   a certificate for localhost signed by that one
#   DIR/other_host.pem, .key  signed by the CA, but for another host name
#
# Exits 77 (skip) without openssl.
set -e
dir=$1
command -v openssl >/dev/null 2>&1 || exit 77
mkdir -p "$dir"
cd "$dir"
ext=ext.cnf
cat >$ext <<END
[leaf]
basicConstraints = CA:FALSE
keyUsage = digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = @alt
[alt]
DNS.1 = localhost
IP.1 = 127.0.0.1
[other]
basicConstraints = CA:FALSE
keyUsage = digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = DNS:elsewhere.invalid
END
ca() { # name
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=$1" \
    -keyout "$1.key" -out "$1.pem" 2>/dev/null
}
leaf() { # name ca section
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$1" -keyout "$1.key" \
    -out "$1.csr" 2>/dev/null
  openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" \
    -CAcreateserial -days 2 -extfile $ext -extensions "$3" \
    -out "$1.pem" 2>/dev/null
}
ca ca
ca rogue_ca
leaf node ca leaf
leaf rogue rogue_ca leaf
leaf other_host ca other
rm -f ./*.csr ./*.srl
