package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
)

// ParsePublicKey reads a PEM-encoded public key: a "PUBLIC KEY" block (PKIX, RSA or
// ECDSA), an "RSA PUBLIC KEY" block (PKCS #1) or a "CERTIFICATE" whose key is either.
func ParsePublicKey(data []byte) (crypto.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	var key any
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			key = cert.PublicKey
		}
	default:
		return nil, errors.New("want a PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE PEM block, not " + block.Type)
	}
	if err != nil {
		return nil, errors.New("the PEM block does not hold a valid key")
	}
	switch key.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey:
		return key, nil
	}
	return nil, errors.New("want an RSA or ECDSA public key")
}
