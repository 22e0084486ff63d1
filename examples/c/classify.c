/* Classifies one input with MXNet's prediction API (c_predict_api.h).
 *
 *   classify MODEL-symbol.json MODEL-0000.params INPUT.params [INPUT_NAME]
 *
 * INPUT.params is an NDArray list file (mx.nd.save) whose first array is
 * the input; its shape becomes the input shape. Prints the output shape and
 * the top-5 classes of each image, then the raw outputs to stdout as
 * "output[i] = value" lines when MXNET_EXAMPLE_DUMP is set. */
#include <mxnet/c_predict_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *read_file(const char *path, long *size) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "cannot open %s\n", path);
    exit(1);
  }
  fseek(f, 0, SEEK_END);
  *size = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc(*size + 1);
  if (fread(buf, 1, *size, f) != (size_t)*size) {
    fprintf(stderr, "cannot read %s\n", path);
    exit(1);
  }
  buf[*size] = '\0';
  fclose(f);
  return buf;
}

#define CALL(expr)                                                       \
  do {                                                                   \
    if ((expr) != 0) {                                                   \
      fprintf(stderr, "%s failed: %s\n", #expr, MXGetLastError());        \
      return 1;                                                          \
    }                                                                    \
  } while (0)

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s MODEL-symbol.json MODEL-0000.params INPUT.params [INPUT_NAME]\n", argv[0]);
    return 2;
  }
  const char *input_name = argc > 4 ? argv[4] : "data";
  long json_size, params_size, input_size;
  char *json = read_file(argv[1], &json_size);
  char *params = read_file(argv[2], &params_size);
  char *input_file = read_file(argv[3], &input_size);

  /* The input array and its shape, through the NDList helper. */
  NDListHandle list;
  mx_uint list_len;
  CALL(MXNDListCreate(input_file, (int)input_size, &list, &list_len));
  const char *key;
  const mx_float *input;
  const mx_uint *shape;
  mx_uint ndim;
  CALL(MXNDListGet(list, 0, &key, &input, &shape, &ndim));
  mx_uint input_shape[8];
  mx_uint input_elems = 1;
  if (ndim > 8) {
    fprintf(stderr, "the input has %u dimensions; this example handles at most 8\n", ndim);
    return 1;
  }
  for (mx_uint i = 0; i < ndim; i++) {
    input_shape[i] = shape[i];
    input_elems *= shape[i];
  }

  const char *keys[1] = {input_name};
  mx_uint indptr[2] = {0, ndim};
  PredictorHandle pred;
  CALL(MXPredCreate(json, params, (int)params_size, 1, 0, 1, keys, indptr, input_shape, &pred));
  CALL(MXPredSetInput(pred, input_name, input, input_elems));
  CALL(MXPredForward(pred));

  mx_uint *out_shape;
  mx_uint out_ndim;
  CALL(MXPredGetOutputShape(pred, 0, &out_shape, &out_ndim));
  mx_uint out_elems = 1;
  printf("output shape:");
  for (mx_uint i = 0; i < out_ndim; i++) {
    printf(" %u", out_shape[i]);
    out_elems *= out_shape[i];
  }
  printf("\n");
  mx_uint batch = out_ndim > 0 ? out_shape[0] : 1;
  mx_uint classes = out_elems / (batch ? batch : 1);
  float *out = malloc(sizeof(float) * out_elems);
  CALL(MXPredGetOutput(pred, 0, out, out_elems));

  for (mx_uint b = 0; b < batch; b++) {
    const float *row = out + (size_t)b * classes;
    printf("image %u top-5:", b);
    int used[5] = {-1, -1, -1, -1, -1};
    for (int k = 0; k < 5 && k < (int)classes; k++) {
      int best = -1;
      for (mx_uint c = 0; c < classes; c++) {
        int taken = 0;
        for (int j = 0; j < k; j++) taken |= used[j] == (int)c;
        if (!taken && (best < 0 || row[c] > row[best])) best = (int)c;
      }
      used[k] = best;
      printf(" %d (%.4f)", best, row[best]);
    }
    printf("\n");
  }
  if (getenv("MXNET_EXAMPLE_DUMP")) {
    for (mx_uint i = 0; i < out_elems; i++) printf("output[%u] = %.9g\n", i, out[i]);
  }

  free(out);
  CALL(MXPredFree(pred));
  CALL(MXNDListFree(list));
  free(json);
  free(params);
  free(input_file);
  return 0;
}
