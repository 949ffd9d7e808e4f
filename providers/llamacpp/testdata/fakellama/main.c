/* A stand-in for llama.cpp's llama-server: --version prints to stderr as
 * the real binary does (build 4748 format). */
#include <stdio.h>
#include <string.h>

#ifdef FAKE_GGML_CUDA
#define BACKEND "CUDA"
#else
#define BACKEND "CPU"
#endif

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--version") == 0) {
            fprintf(stderr, "version: 1234 (fa4e11a3c)\n");
            fprintf(stderr, "built with cc for x86_64-linux-gnu (" BACKEND ")\n");
            return 0;
        }
    }
    fprintf(stderr, "fake llama-server: only --version is implemented\n");
    return 1;
}
