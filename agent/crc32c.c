/* placeholder until crc32c lands */
