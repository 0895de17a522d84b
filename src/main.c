#include <stdio.h>
int main(void){puts("notebookd");return 0;}
