/* Loads a symbol file through the C API and prints what MXNet's Python
 * frontend reads from it; the Rust test compares the lists with MXNet's.
 * Usage: symbol MODEL-symbol.json */
#include <mxnet/c_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CALL(expr)                                                     \
  do {                                                                 \
    if ((expr) != 0) {                                                 \
      fprintf(stderr, "%s failed: %s\n", #expr, MXGetLastError());      \
      return 1;                                                        \
    }                                                                  \
  } while (0)

static void print_list(const char *label, mx_uint n, const char **names) {
  printf("%s:", label);
  for (mx_uint i = 0; i < n; i++) printf(" %s", names[i]);
  printf("\n");
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s MODEL-symbol.json\n", argv[0]);
    return 2;
  }
  SymbolHandle sym;
  CALL(MXSymbolCreateFromFile(argv[1], &sym));
  mx_uint n;
  const char **names;
  CALL(MXSymbolListArguments(sym, &n, &names));
  print_list("arguments", n, names);
  CALL(MXSymbolListAuxiliaryStates(sym, &n, &names));
  print_list("aux", n, names);
  CALL(MXSymbolListOutputs(sym, &n, &names));
  print_list("outputs", n, names);

  /* Save, reload from the JSON text, and list again: the lists survive. */
  const char *json;
  CALL(MXSymbolSaveToJSON(sym, &json));
  char *copy = malloc(strlen(json) + 1);
  memcpy(copy, json, strlen(json) + 1);
  SymbolHandle again;
  CALL(MXSymbolCreateFromJSON(copy, &again));
  mx_uint n2;
  CALL(MXSymbolListArguments(again, &n2, &names));
  printf("reloaded arguments: %u\n", n2);

  /* Errors, not crashes. */
  SymbolHandle bad;
  if (MXSymbolCreateFromJSON("{\"nodes\": [", &bad) != -1 || MXGetLastError()[0] == '\0') return 1;
  if (MXSymbolCreateFromFile("/nonexistent-symbol.json", &bad) != -1) return 1;
  if (MXSymbolListArguments(NULL, &n, &names) != -1) return 1;

  CALL(MXSymbolFree(sym));
  CALL(NNSymbolFree(again));
  free(copy);
  return 0;
}
