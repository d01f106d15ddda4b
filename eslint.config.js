import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'build/**', 'build-*/**', 'node_modules/**', 'bench/results/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      'no-console': 'off',
    },
  },
  {
    files: ['src/**/*.ts'],
    rules: {
      // The library never starts processes (the tests check it too).
      'no-restricted-imports': ['error', { paths: [{ name: 'node:child_process', message: 'ctpurge talks netlink; no child processes in the library' }, { name: 'child_process', message: 'no child processes in the library' }] }],
    },
  },
);
