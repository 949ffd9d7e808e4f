package proto

// The command checks the protoc version first, because protoc writes its
// version into the generated files and they must not change between runs.
//go:generate sh -c "set -eu; protoc --version | grep -qx 'libprotoc 3.21.12' || { echo 'providers/proto: generating needs protoc 3.21.12 (Debian 12: apt-get install protobuf-compiler)' >&2; exit 1; }; bin=$(mktemp -d); trap 'rm -rf ${DOLLAR}bin' EXIT; GOBIN=${DOLLAR}bin go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12; GOBIN=${DOLLAR}bin go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2; PATH=${DOLLAR}bin:${DOLLAR}PATH protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative provider.proto"
